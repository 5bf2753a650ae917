"""The one rule of a send retried with backoff that another copy of its task may find.

A failed attempt keeps the send's lease until its next attempt is due (the backoff of
models.backoff, and no sooner than the other end asked): a copy of the task (the outbox
relay publishes a message again once it has not completed for OUTBOX_REDISPATCH_AFTER, which
also brings back a retry the broker lost) finds the lease held and comes back when it ends,
instead of sending early and starting a second retry chain. Notification deliveries and
invitation emails both keep it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from models.backoff import backoff


def held_after_failure(
    now: datetime,
    attempts: int,
    *,
    retry_base: float,
    retry_max: float,
    asked: float | None = None,
) -> tuple[float, datetime]:
    """The wait after `attempts` failed attempts (seconds) and the moment the failed attempt's
    lease ends: when the next attempt is due."""
    wait = backoff(attempts, retry_base=retry_base, retry_max=retry_max, asked=asked)
    return wait, now + timedelta(seconds=wait)


def time_left(held_until: datetime | None, now: datetime) -> float:
    """Seconds until a lease ends (0 when there is none or it has ended)."""
    if held_until is None:
        return 0.0
    return max(0.0, (held_until - now).total_seconds())
