"""A run's own queues taken off a shared Redis broker when the run ends."""

from __future__ import annotations

import redis


def remove_queues(broker_url: str, queue: str) -> int:
    """Delete every key naming `queue` (its lists, its .urgent and .drain lists, kombu's
    bindings of them, its wake-up flags) from a Redis broker; how many went. Each test run and
    benchmark names a queue of its own, and the machine's Redis would otherwise keep them all."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return 0
    client = redis.Redis.from_url(broker_url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
