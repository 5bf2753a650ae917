"""Group commit: concurrent submits share stores, each gets its own outcome, errors reach all."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.wait import wait_until
from webhooks.group_commit import GroupCommit, _Waiting


def test_concurrent_submits_share_stores_and_each_gets_its_own_outcome():
    first_store_started, release_first_store = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def store(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:  # hold the first store so the others queue behind it
            first_store_started.set()
            assert release_first_store.wait(60), "the test never released the first store"
        return [item * 10 for item in items]

    group = GroupCommit(store, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(group.submit, 0)
        assert first_store_started.wait(60), "the first store never started"
        rest = [pool.submit(group.submit, n) for n in range(1, 8)]
        wait_until_queued(group, 7)
        release_first_store.set()
        outcomes = [first.result(60)] + [future.result(60) for future in rest]

    assert outcomes == [n * 10 for n in range(8)]
    assert batches[0] == [0]
    assert sorted(len(batch) for batch in batches[1:]) == [1, 3, 3]  # 7 queued, 3 per store
    assert sorted(item for batch in batches for item in batch) == list(range(8))


def test_a_failed_store_fails_every_request_of_its_batch_and_the_next_store_runs():
    calls: list[list[str]] = []

    def store(items: list[str]) -> list[str]:
        calls.append(items)
        if "bad" in items:
            raise RuntimeError("database down")
        return [item.upper() for item in items]

    group = GroupCommit(store)
    with pytest.raises(RuntimeError, match="database down"):
        group.submit("bad")
    assert group.submit("ok") == "OK"
    assert calls == [["bad"], ["ok"]]


def test_a_batch_failed_by_one_item_is_split_until_that_item_fails_alone():
    stores: list[list[str]] = []

    def store(items: list[str]) -> list[str]:
        stores.append(items)
        if "bad" in items:
            raise ValueError("refused")
        if "down" in items:
            raise ConnectionError("database down")
        return [item.upper() for item in items]

    group = GroupCommit(store, split_on=lambda error: isinstance(error, ValueError))
    waiting = [_Waiting(item) for item in ["a", "b", "bad", "c", "d"]]
    group._run(waiting)

    assert [(w.outcome, type(w.error)) for w in waiting] == [
        ("A", type(None)),
        ("B", type(None)),
        (None, ValueError),
        ("C", type(None)),
        ("D", type(None)),
    ]
    assert stores == [
        ["a", "b", "bad", "c", "d"],
        ["a", "b"],
        ["bad", "c", "d"],
        ["bad"],
        ["c", "d"],
    ]
    stores.clear()
    unavailable = [_Waiting(item) for item in ["a", "down", "b"]]
    group._run(unavailable)
    assert stores == [["a", "down", "b"]]  # not blamed on an item: no split, one failure for all
    assert all(isinstance(w.error, ConnectionError) for w in unavailable)


def wait_until_queued(group: GroupCommit, count: int) -> None:
    def queued() -> bool:
        with group._condition:
            return len(group._waiting) == count

    wait_until(queued, interval=0.01, what=f"{count} submits queued")
