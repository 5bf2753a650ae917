"""Playing beat's part in tests that have a worker but no beat: asking for the cut-off reaper."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tests.support.wait import wait_until

T = TypeVar("T")


def wait_reaping(
    check: Callable[[], T], *, what: str, timeout: float = 40, every: float = 0.5
) -> T:
    """Wait for `check`, sending `cutoffs.reap` to the worker every `every` seconds meanwhile."""
    from worker.celery_app import celery_app

    last = 0.0

    def reap_then_check() -> T:
        nonlocal last
        if time.monotonic() - last >= every:
            # As beat sends it: a reap the worker could not start in time is dropped, so a slow
            # worker is not buried under stale reaps (they would hold up its urgent queue).
            celery_app.send_task("cutoffs.reap", expires=max(every * 4, 2.0))
            last = time.monotonic()
        return check()

    return wait_until(reap_then_check, timeout=timeout, what=what)
