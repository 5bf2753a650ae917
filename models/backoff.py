"""The one backoff rule of every retrying path (cut-offs, notification deliveries, audit
streams, the Odock reconcile, tasks waiting out the database): doubling from a base, at most
a cap, whatever the number of attempts behind it."""

from __future__ import annotations

# Past the cap long before this for any base above a nanosecond; 2**n of a larger n no longer
# converts to a float (about 1,025 attempts: days of an outage at a cap of minutes), and the
# failure being recorded raised OverflowError instead.
MAX_DOUBLINGS = 64


def backoff(
    attempts: int, *, retry_base: float, retry_max: float, asked: float | None = None
) -> float:
    """Seconds before the next attempt after `attempts` failed ones (1 for the first wait):
    `retry_base`, doubling after each failure, never more than `retry_max`; and at least what
    the other end `asked` (its Retry-After on a 429 or 503), that too at most `retry_max`."""
    doublings = min(max(0, attempts - 1), MAX_DOUBLINGS)
    wait = float(min(retry_base * 2**doublings, retry_max))
    return wait if asked is None else max(wait, min(asked, retry_max))
