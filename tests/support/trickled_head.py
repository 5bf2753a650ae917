"""A loopback HTTP server that answers every request with its status line at once, then
trickles its headers a byte at a time (each byte well within any read timeout) for as long as
the test asks, then ends them and sends a whole, good body: a caller that waits for it is
answered, late; one that bounds the whole exchange hangs up first, which the server records."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field


@dataclass
class TrickledHead:
    url: str
    answered: threading.Event = field(default_factory=threading.Event)  # a whole answer sent
    hung_up: threading.Event = field(default_factory=threading.Event)  # cut off mid-headers


@contextmanager
def trickled_head(
    body: bytes, *, seconds: float = 15.0, every: float = 0.05
) -> Iterator[TrickledHead]:
    """A server at the yielded URL whose headers take `seconds` to come, `every` seconds a
    byte, then `body` (application/json) whole."""
    listener = socket.create_server(("127.0.0.1", 0))
    served = TrickledHead(f"http://127.0.0.1:{listener.getsockname()[1]}")
    filler = b"a" * int(seconds / every)
    head_end = (
        b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % len(body)
    )

    def answer(client: socket.socket) -> None:
        with client:
            read_request(client)
            try:
                client.sendall(b"HTTP/1.1 200 OK\r\nX-Filler: ")
                for byte in filler:
                    time.sleep(every)
                    client.sendall(bytes([byte]))
                client.sendall(head_end + body)
            except OSError:
                served.hung_up.set()
                return
            served.answered.set()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield served
    finally:
        with suppress(OSError):  # wakes the accepting thread, which close() alone does not
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()


def read_request(client: socket.socket) -> None:
    """The request's head and its body (by its Content-Length), so that nothing is left
    unread when the answer comes."""
    data = b""
    with suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = client.recv(65536)
            if not chunk:
                return
            rest += chunk
