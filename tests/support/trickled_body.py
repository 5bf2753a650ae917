"""A pytest-httpserver handler whose answer's body comes a byte at a time, each well within
any read timeout, until the test releases it (or a minute has passed).

What a test of a bounded caller asserts is that the caller was done before the body was:
`ended` is still unset when the call returns. That holds however slow the machine, unlike a
bound on the call's wall-clock time; a caller that waited for the body would return only once
`ended` is set (a minute later, past any timeout it was given)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from werkzeug import Request, Response

EVERY = 0.1  # seconds between bytes
LONGEST = 60.0  # the body ends by itself after this, released or not


class TrickledBody:
    def __init__(self, *, status: int = 200, content_type: str = "application/json") -> None:
        self.status = status
        self.content_type = content_type
        self.started = threading.Event()  # the status and headers are sent, the body begun
        self.ended = threading.Event()  # the whole body was sent
        self.released = threading.Event()

    def __call__(self, request: Request) -> Response:
        return Response(self._body(), status=self.status, content_type=self.content_type)

    def _body(self) -> Iterator[bytes]:
        self.started.set()
        deadline = time.monotonic() + LONGEST
        while time.monotonic() < deadline and not self.released.wait(EVERY):
            yield b" "
        self.ended.set()

    def release(self) -> None:
        """End the body now (the test is done with it): the server's thread is not held."""
        self.released.set()
