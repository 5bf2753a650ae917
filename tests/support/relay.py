"""Playing beat's part in tests that have a worker but no beat: running the outbox relay.

A request publishes its messages right after commit; one it could not publish (the broker
down or not answering in time, no producer to publish with) is handed back to the outbox, and
in a deployment beat's relay sends it within OUTBOX_RELAY_INTERVAL. A test that waits for a
worker to act on what a request committed, with no beat running, waits here instead: it sees
what a deployment's worker would, however the eager publish went."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tests.support.wait import wait_until

T = TypeVar("T")

EVERY = 5.0  # seconds: beat's schedule of the relay (OUTBOX_RELAY_INTERVAL's default)


def wait_relaying(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float = 90,
    every: float = EVERY,
    interval: float = 0.05,
) -> T:
    """Wait for `check`, running the outbox relay in this process every `every` seconds
    meanwhile (first after `every`: what the eager publish sent is not due, and a relay run
    at once would only race it). The relay publishes on a broker connection of its own, so
    a publish that failed here for want of a pooled producer does not fail it too."""
    return wait_until(_relaying(check, every), timeout=timeout, interval=interval, what=what)


def wait_as_beat(check: Callable[[], T], *, what: str, timeout: float = 90) -> T:
    """Wait for `check` doing all of beat's part: the outbox relay as above and a cut-off reap
    every half second (tests/support/reaper.py), for a test whose worker may need either: a
    store command whose first attempt timed out on a loaded machine is sent again by the
    reaper, never by the relay."""
    from tests.support.reaper import wait_reaping

    return wait_reaping(_relaying(check, EVERY), what=what, timeout=timeout)


def _relaying(check: Callable[[], T], every: float) -> Callable[[], T]:
    from worker.outbox_relay import relay_outbox

    last = time.monotonic()

    def relay_then_check() -> T:
        nonlocal last
        if time.monotonic() - last >= every:
            relay_outbox()
            last = time.monotonic()
        return check()

    return relay_then_check
