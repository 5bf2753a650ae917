"""A request body as a server without a Content-Length hands it to the app (chunked): a stream
that says how much of it the app read, for tests of a bounded reader.

What such a test asserts is how many bytes the app took, not how long it took: a reader that
stops at its limit took at most one byte more than the limit, however large (or endless) the
body, where one that read the whole body first took all of it (or its server's maximum)."""

from __future__ import annotations

import io
from typing import Any

ENDLESS = -1


class StreamedBody(io.RawIOBase):
    """`start`, then `filler` bytes up to `size` bytes in all (ENDLESS: never ends)."""

    def __init__(self, start: bytes, size: int = ENDLESS, filler: bytes = b"a") -> None:
        self.start, self.size, self.filler = start, size, filler[:1]
        self.taken = 0  # bytes the app read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self.size != ENDLESS:
            wanted = min(wanted, self.size - self.taken)
        head = self.start[self.taken : self.taken + wanted]
        data = head + self.filler * (wanted - len(head))
        buffer[: len(data)] = data
        self.taken += len(data)
        return len(data)


def chunked(stream: StreamedBody, content_type: str, **headers: str) -> dict[str, Any]:
    """Test client arguments that send `stream` as gunicorn hands over a chunked body: no
    Content-Length, and wsgi.input_terminated (the server ends the stream, so werkzeug reads
    it instead of an empty one)."""
    return {
        "data": b"",  # the test client measures a stream it is given; the environ takes it
        "headers": {**headers, "Content-Type": content_type, "Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input": stream, "wsgi.input_terminated": True},
    }
