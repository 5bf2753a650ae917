"""The one backoff rule of every retrying path (cut-offs, notification deliveries, audit
streams, the Odock reconcile, tasks waiting out the database): doubling from a base, at most
a cap, whatever the number of attempts behind it."""

from __future__ import annotations

# Past the cap long before this for any base above a nanosecond; 2**n of a larger n no longer
# converts to a float (about 1,025 attempts: days of an outage at a cap of minutes), and the
# failure being recorded raised OverflowError instead.
MAX_DOUBLINGS = 64


def backoff(attempts: int, *, retry_base: float, retry_max: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones (1 for the first wait):
    `retry_base`, doubling after each failure, never more than `retry_max`."""
    doublings = min(max(0, attempts - 1), MAX_DOUBLINGS)
    return float(min(retry_base * 2**doublings, retry_max))
