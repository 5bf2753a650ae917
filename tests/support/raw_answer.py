"""A loopback HTTP server that answers every request with the same bytes, written as given:
for answers a framework would not write on its own (a chunked body that ends at once)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.trickled_head import read_request


@contextmanager
def raw_answer(answer: bytes) -> Iterator[str]:
    """A server at the yielded URL that reads each request whole, writes `answer` and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_one(client: socket.socket) -> None:
        with client, suppress(OSError):
            read_request(client)
            client.sendall(answer)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer_one, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with suppress(OSError):  # wakes the accepting thread, which close() alone does not
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
