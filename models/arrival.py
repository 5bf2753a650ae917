"""When the change being applied arrived at odock-sync: the start of the time-to-kill figure.

Each entry point (a web request, an IdP delivery's drain, a directory sync run) says when its
change arrived; a revocation made meanwhile hands that moment to the gateway invalidation it
queues, which reports how long the revoked keys outlived the request to cut them off.
Wall-clock seconds, as the invalidation may run in another process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime

_ARRIVED_AT: ContextVar[float | None] = ContextVar("odock_arrived_at", default=None)


@contextmanager
def arrived(at: float | datetime | None = None) -> Iterator[None]:
    """Changes made in this block arrived at `at` (now when not given)."""
    token = begin(at)
    try:
        yield
    finally:
        end(token)


def begin(at: float | datetime | None = None) -> Token[float | None]:
    """Changes made from now on arrived at `at` (now when not given), until `end`."""
    return _ARRIVED_AT.set(_seconds(at) if at is not None else time.time())


def end(token: Token[float | None]) -> None:
    _ARRIVED_AT.reset(token)


def arrival() -> float | None:
    """When the change being applied arrived, if an entry point said so."""
    return _ARRIVED_AT.get()


def _seconds(at: float | datetime) -> float:
    if isinstance(at, datetime):
        # SQLite hands back naive datetimes; odock-sync stores UTC throughout.
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    return at
