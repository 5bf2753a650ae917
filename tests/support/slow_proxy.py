"""A TCP forwarder on loopback that holds every answer of the server back for a while: a
directory that answers, slowly (a read through it takes as long as the test needs)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlparse


@contextmanager
def slow_proxy(url: str, *, delay: float) -> Iterator[str]:
    """An ldap:// URL that reaches `url`, each chunk the server sends `delay` seconds late."""
    target = urlparse(url)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket, late: float) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                time.sleep(late)
                sink.sendall(chunk)
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
        yield f"ldap://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
