"""A TCP forwarder on loopback that holds every answer of the server back for a while: a
directory that answers, slowly (a read through it takes as long as the test needs), or a server
that trickles its answer a few bytes at a time, each piece well within any read timeout, or
one that resets the connection part-way through its answer."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlparse


@contextmanager
def slow_proxy(
    url: str,
    *,
    delay: float,
    piece: int | None = None,
    scheme: str = "ldap",
    reset_after: int | None = None,
    held: threading.Event | None = None,
) -> Iterator[str]:
    """A `scheme`:// URL that reaches `url`, each chunk the server sends `delay` seconds late;
    with `piece`, each chunk is passed on `piece` bytes at a time, `delay` seconds apart; with
    `reset_after`, the client's connection is reset (RST) once that many bytes of the server's
    answer were passed on; with `held`, no answer is passed on until that event is set (a
    directory that does not answer until the test says so)."""
    target = urlparse(url)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket, late: float, cut: int | None) -> None:
        passed = b""  # what was passed on, while the cut is counted (an HTTP answer)
        with suppress(OSError):
            while chunk := source.recv(65536):
                step = (piece or len(chunk)) if late else len(chunk)
                for start in range(0, len(chunk), step):
                    if held is not None:
                        held.wait()
                    time.sleep(late)
                    part = chunk[start : start + step]
                    if cut is not None:
                        head = (passed + part).find(b"\r\n\r\n")
                        if head >= 0 and len(passed + part) >= head + 4 + cut:
                            sink.sendall(part[: head + 4 + cut - len(passed)])
                            reset(sink)
                            return
                        passed += part
                    sink.sendall(part)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def reset(sock: socket.socket) -> None:
        """Close with an RST instead of a FIN: the answer is cut, not ended."""
        time.sleep(0.1)  # what was passed on reaches the client first
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The other pipe's recv on this socket returns (else the close waits for it) ...
        sock.shutdown(socket.SHUT_RD)
        time.sleep(0.1)
        sock.close()  # ... and the close aborts the connection

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection((target.hostname, target.port or 389))
            threading.Thread(target=pipe, args=(client, server, 0.0, None), daemon=True).start()
            threading.Thread(
                target=pipe, args=(server, client, delay, reset_after), daemon=True
            ).start()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        if held is not None:
            held.set()  # the pipes' threads finish
        with suppress(OSError):  # wakes the accepting thread, which close() alone does not
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
