"""Requests sent at the same moment: each thread waits at a barrier, then sends its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

Answer = TypeVar("Answer")


def in_parallel(calls: list[Callable[[], Answer]]) -> list[Answer]:
    """Run every call at once; the answers in the calls' order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def in_thread(body: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `body` in a thread of its own, started; its result, or the error it raised (the
    test reports it, whatever it is), lands in the dict as "result" or "error"."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = body()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out
