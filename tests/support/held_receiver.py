"""An HTTP receiver on loopback that holds every request until the test lets it answer: a
delivery in flight for as long as the test needs (to delete its hook or stream meanwhile)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_AT_MOST = 60.0  # a test that failed before letting it answer does not hang the run


@dataclass
class HeldReceiver:
    url: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)  # a request came in
    answer: threading.Event = field(default_factory=threading.Event)  # let them all answer
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> int:
        with self.lock:
            return len(self.bodies)


@contextmanager
def held_receiver(status: int = 200) -> Iterator[HeldReceiver]:
    """A receiver answering `status` to each request once `answer` is set."""
    receiver = HeldReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.bodies.append(body)
            receiver.arrived.set()
            receiver.answer.wait(HOLD_AT_MOST)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.answer.set()
        server.shutdown()
        server.server_close()
