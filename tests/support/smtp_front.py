"""A TCP front on loopback for the test SMTP server, switched by the test: it passes each
connection through to the real server (aiosmtpd, tests/support/smtp.py), or it plays a broken
one: closing every connection at once (a server going away), trickling its greeting a byte
at a time, each well within any read timeout, for as long as it is left trickling (a server
that never finishes answering), or holding the connection open without a word (a send in
flight for as long as the test needs). It records whether a client hung up on a trickled
greeting, and when one is held."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

PASS, CLOSE, TRICKLE, HOLD = "pass", "close", "trickle", "hold"
TRICKLE_EVERY = 0.2  # seconds between bytes of a trickled greeting
TRICKLE_AT_MOST = 60.0  # a test that failed while it trickled does not hang the run


@dataclass
class SmtpFront:
    port: int
    mode: str = PASS
    trickled: threading.Event = field(default_factory=threading.Event)  # a greeting begun
    hung_up: threading.Event = field(default_factory=threading.Event)  # a client left one
    held: threading.Event = field(default_factory=threading.Event)  # a connection is held


@contextmanager
def smtp_front(server_port: int, mode: str = PASS) -> Iterator[SmtpFront]:
    """A front on a port of its own before the SMTP server on `server_port`."""
    listener = socket.create_server(("127.0.0.1", 0))
    front = SmtpFront(listener.getsockname()[1], mode)
    stopping = threading.Event()

    def serve(client: socket.socket) -> None:
        with client:
            if front.mode == CLOSE:
                return
            if front.mode == TRICKLE:
                _trickle(client, front, stopping)
                return
            if front.mode == HOLD:
                front.held.set()
                client.settimeout(TRICKLE_AT_MOST)
                with suppress(OSError):
                    client.recv(1)  # until the client goes (or the test gives up)
                return
            with socket.create_connection(("127.0.0.1", server_port)) as server:
                _pipe(client, server)

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield front
    finally:
        stopping.set()
        listener.close()


def _trickle(client: socket.socket, front: SmtpFront, stopping: threading.Event) -> None:
    front.trickled.set()
    give_up = time.monotonic() + TRICKLE_AT_MOST
    try:
        client.sendall(b"220")
        while not stopping.is_set() and time.monotonic() < give_up:
            time.sleep(TRICKLE_EVERY)
            client.sendall(b"-")
    except OSError:
        front.hung_up.set()


def _pipe(client: socket.socket, server: socket.socket) -> None:
    """Both ways until either side closes."""

    def one_way(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=one_way, args=(server, client), daemon=True)
    back.start()
    one_way(client, server)
    back.join(TRICKLE_AT_MOST)
