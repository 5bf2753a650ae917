"""worker/pool_results.py: a task result the worker's event loop had half read when its hub was
reset (a broker blip) is read to its end first, so the pool gets it whole. The fault test
(tests/faults/test_broker_restart.py) shows the stall this caused with a real worker and
broker when it wins the race; these show the mechanism every time."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import pytest
from kombu.asynchronous.hub import Hub

from worker import pool_results

HEADER = 4


def result_reader(fd: int, got: list[bytes]) -> Iterator[None]:
    """A length, then the body, read as the prefork pool reads a result: a generator that
    yields while the pipe has nothing more (the loop resumes it when it is readable)."""
    size = int.from_bytes(os.read(fd, HEADER), "big")
    body = b""
    while len(body) < size:
        try:
            chunk = os.read(fd, size - len(body))
        except BlockingIOError:
            yield
            continue
        if not chunk:
            raise EOFError("the pool process is gone")
        body += chunk
    got.append(body)


def half_read(body: bytes) -> tuple[Hub, int, int, Iterator[None], list[bytes]]:
    """A hub holding a reader that has read the header of `body`'s message, not the body."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.write(write_end, len(body).to_bytes(HEADER, "big"))
    got: list[bytes] = []
    reader = result_reader(read_end, got)
    next(reader)
    hub = Hub()
    hub.add_reader(read_end, reader)
    return hub, read_end, write_end, reader, got


def write_later(fd: int, data: bytes, after: float = 0.2) -> threading.Thread:
    def write() -> None:
        view = memoryview(data)
        with contextlib.suppress(BrokenPipeError):  # the reader gave up: the test says so
            while view:
                view = view[os.write(fd, view) :]

    writer = threading.Timer(after, write)
    writer.start()
    return writer


@pytest.fixture(autouse=True)
def registered() -> None:
    pool_results.register()  # as worker/entry.py does at boot


def test_a_result_half_read_when_the_hub_resets_reaches_the_pool():
    """Failed before (the reset dropped the reader: nothing was ever delivered). The body
    comes after the reset began, larger than a pipe's buffer, in several reads."""
    body = os.urandom(200_000)
    hub, read_end, write_end, _reader, got = half_read(body)
    writer = write_later(write_end, body)
    try:
        hub.reset()
        assert got == [body]
    finally:
        os.close(read_end)
        writer.join()
        os.close(write_end)


def test_a_pool_process_gone_mid_result_does_not_hold_the_reset(monkeypatch):
    """The pipe closes before the body came: the reset goes on at once (the pool reports the
    task lost), as it does once FINISH_WITHIN passes for a process that never writes."""
    monkeypatch.setattr(pool_results, "FINISH_WITHIN", 0.5)
    hub, read_end, write_end, _reader, got = half_read(b"never sent")
    os.close(write_end)
    hub.reset()
    assert got == []
    os.close(read_end)

    silent, read_end, write_end, _reader, got = half_read(b"never sent either")
    silent.reset()  # returns after FINISH_WITHIN: a bound, not a latency asserted
    assert got == []
    os.close(read_end)
    os.close(write_end)
