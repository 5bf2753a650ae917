"""A SIEM receiver on loopback: records what it accepts, refuses while told to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    url: str = ""
    refuse_next: int = 0  # answer 503 to this many requests, then accept
    refuse_with: tuple[int, str] = (503, "")  # the refusal's status and Retry-After (if any)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def refused(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status != 200]


@contextmanager
def siem_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                refusing = receiver.refuse_next > 0
                status, retry_after = receiver.refuse_with if refusing else (200, "")
                receiver.refuse_next = max(0, receiver.refuse_next - 1)
                receiver.requests.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/collector"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
