"""A fix for a worker that loses a pool process for good on a broker blip.

The prefork pool sends each task's result up a pipe, and the worker's event loop reads it with
a generator that it registers as the pipe's reader while a message is only partly there (a
large result, such as a retry's traceback, is written as a header, then the body). When the
broker connection drops, Celery 5.7's event loop resets its hub, forgetting every reader, and
registers the pool's plain readers again on reconnect: a result half read at that moment is
lost, and its rest is read as the start of the next message. The worker then counts the
process busy with that task for ever (the fair scheduler gives it no more tasks, and with the
same mishap on every process the worker takes none at all), and `celery inspect active` shows
the finished task still running. Finishing the partly read results before the reset keeps
every message whole.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator
from inspect import isgenerator

import structlog
from kombu.asynchronous.hub import Hub

log = structlog.get_logger(__name__)

# A child writes a result's body right after its header; one that has not within this long
# is stuck or dying, and the pool's own handling of a lost worker takes over.
FINISH_WITHIN = 5.0


def register() -> None:
    """Make every event loop hub of this process finish its partly read results first when
    it is reset."""
    if not getattr(Hub.reset, "finishes_partial_reads", False):
        Hub.reset = _finishing_partial_reads(Hub.reset)  # type: ignore[method-assign]


def _finishing_partial_reads(reset: Callable[[Hub], None]) -> Callable[[Hub], None]:
    def reset_after_reads(hub: Hub) -> None:
        finish_partial_reads(hub)
        reset(hub)

    reset_after_reads.finishes_partial_reads = True  # type: ignore[attr-defined]
    return reset_after_reads


def finish_partial_reads(hub: Hub) -> None:
    for fd, (reader, _args) in list(hub.readers.items()):
        if isgenerator(reader):
            log.warning("worker.finishing_partial_result", fd=fd)
            _read_to_the_end(fd, reader)


def _read_to_the_end(fd: int, reader: Iterator[object]) -> None:
    """Resume the reader until its message is whole (it then hands it to the pool), the pipe
    closes, or FINISH_WITHIN passes."""
    readable = select.poll()
    readable.register(fd, select.POLLIN)
    until = time.monotonic() + FINISH_WITHIN
    while time.monotonic() < until:
        try:
            next(reader)
        except StopIteration:
            return
        except (OSError, EOFError):
            return  # the process is gone: the pool reports its task lost
        readable.poll(100)
    log.error("worker.partial_result_abandoned", fd=fd, waited_seconds=FINISH_WITHIN)
