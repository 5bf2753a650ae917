"""A TCP forwarder on loopback that holds every answer of the server back for a while: a
directory that answers, slowly (a read through it takes as long as the test needs), or a server
that trickles its answer a few bytes at a time, each piece well within any read timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlparse


@contextmanager
def slow_proxy(
    url: str, *, delay: float, piece: int | None = None, scheme: str = "ldap"
) -> Iterator[str]:
    """A `scheme`:// URL that reaches `url`, each chunk the server sends `delay` seconds late;
    with `piece`, each chunk is passed on `piece` bytes at a time, `delay` seconds apart."""
    target = urlparse(url)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket, late: float) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                step = (piece or len(chunk)) if late else len(chunk)
                for start in range(0, len(chunk), step):
                    time.sleep(late)
                    sink.sendall(chunk[start : start + step])
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection((target.hostname, target.port or 389))
            threading.Thread(target=pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client, delay), daemon=True).start()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
