"""Waiting for something another process does, with a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float = 90,
    interval: float = 0.05,
    what: str = "",
    explain: Callable[[], str] | None = None,
) -> T:
    """`check`'s first true result. The bound is for a machine shared with other suites: a
    worker's task waits its turn behind theirs (under a load of 15, one took more than 30 s).
    `explain` adds what the failure message should show (a server's log) when it times out."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            shown = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}{shown}")
        time.sleep(interval)
