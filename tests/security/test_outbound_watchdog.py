"""The watchdog that bounds an outbound call's whole exchange (connectors/outbound.PinnedAdapter)
is one thread per process keeping a heap of deadlines, not a thread per call: a burst of
notifications held by a slow receiver started a threading.Timer, an OS thread, for each call.
A server trickling its headers a byte at a time is still cut off at the call's deadline, also
when that deadline comes before those of calls already waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from connectors.outbound import PostResult, UrlPolicy, post_json
from tests.support.held_receiver import held_receiver
from tests.support.trickled_head import trickled_head
from tests.support.wait import wait_until

LOOPBACK = UrlPolicy(allow_loopback=True)
CALLS = 20


def _calls(count: int, call: Callable[[], PostResult]) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = []

    def run() -> None:
        results.append(call())

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_burst_of_calls_starts_at_most_one_watchdog_thread() -> None:
    with held_receiver() as receiver:
        before = set(threading.enumerate())
        callers, results = _calls(
            CALLS, lambda: post_json(receiver.url, b"{}", {}, timeout=30.0, policy=LOOPBACK)
        )
        try:
            wait_until(lambda: receiver.received() == CALLS, timeout=30, what="every call held")
            started = [t for t in threading.enumerate() if t not in before]
        finally:
            receiver.answer.set()
            for caller in callers:
                caller.join(30)
    handlers = [t for t in started if "process_request_thread" in t.name]  # the receiver's
    others = [t for t in started if t not in callers and t not in handlers]
    assert len(handlers) == CALLS
    assert len(others) <= 1, [t.name for t in others]  # the watchdog, if not running before
    assert len(results) == CALLS and all(r.ok for r in results), results


def test_a_trickling_server_is_cut_off_at_a_deadline_earlier_than_those_waiting() -> None:
    """A call with a short deadline is cut off while calls with later deadlines wait on a
    receiver that holds them; those answer normally once it lets them."""
    with held_receiver() as receiver, trickled_head(b"ok", seconds=15.0) as trickler:
        waiting, answered = _calls(
            3, lambda: post_json(receiver.url, b"{}", {}, timeout=30.0, policy=LOOPBACK)
        )
        try:
            wait_until(lambda: receiver.received() == 3, timeout=30, what="the calls held")
            cut = [post_json(trickler.url, b"{}", {}, timeout=1.0, policy=LOOPBACK)]
            cut += [post_json(trickler.url, b"{}", {}, timeout=0.5, policy=LOOPBACK)]
            assert trickler.hung_up.wait(10.0), "the caller did not hang up mid-headers"
        finally:
            receiver.answer.set()
            for thread in waiting:
                thread.join(30)
    assert [(r.ok, r.error) for r in cut] == [(False, "NotAnsweredInTime")] * 2, cut
    assert not trickler.answered.is_set()
    assert len(answered) == 3 and all(r.ok for r in answered), answered
