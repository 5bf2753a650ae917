"""The time to kill: from a revocation arriving at odock-sync to the gateway acknowledging its
invalidation (bridged: after the store), observed once per revocation its cut-offs complete."""

from __future__ import annotations

import time

from prometheus_client import Histogram

from models.actions.cutoffs import Clock

TIME_TO_KILL = Histogram(
    "odock_time_to_kill_seconds",
    "From a revocation arriving at odock-sync to the gateway acknowledging its invalidation",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)


def observe(clocks: list[Clock]) -> None:
    now = time.time()
    for clock in clocks:
        TIME_TO_KILL.labels(clock.source).observe(max(0.0, now - clock.arrived_at))
