"""Group commit: the concurrent requests of one process store their deliveries together.

Each request hands its item to `submit` and waits for its own outcome. A request that finds no
store in progress leads: it takes everything waiting and stores it in one call, while requests
arriving meanwhile wait for the next one. Under light load a batch is one item and nothing
waits; under heavy load one statement and one commit serve many requests. A request returns
only after the batch holding its item committed, so an answer still means "stored".

A batch whose store fails for a reason `split_on` blames on an item (a value the database
refuses) is split in two and each half stored again, down to that item alone: only its
request learns of the failure. Any other failure (the database unavailable) reaches every
request of the batch at once, not once per item.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class _Waiting(Generic[Item, Outcome]):
    item: Item
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit(Generic[Item, Outcome]):
    def __init__(
        self,
        store: Callable[[list[Item]], list[Outcome]],
        *,
        max_batch: int = 200,
        split_on: Callable[[Exception], bool] = lambda _error: False,
    ) -> None:
        self._store = store
        self._split_on = split_on
        self._max_batch = max_batch
        self._condition = threading.Condition()
        self._waiting: list[_Waiting[Item, Outcome]] = []
        self._storing = False

    def submit(self, item: Item) -> Outcome:
        """Store `item` (in whatever batch it joins) and return its outcome."""
        mine: _Waiting[Item, Outcome] = _Waiting(item)
        with self._condition:
            self._waiting.append(mine)
        while True:
            with self._condition:
                while self._storing and not mine.done:
                    self._condition.wait()
                if mine.done:
                    break
                batch = self._lead()  # it may not reach mine yet: then mine goes in a later one
            self._run(batch)
        if mine.error is not None:
            raise mine.error
        return mine.outcome  # type: ignore[return-value]

    def _lead(self) -> list[_Waiting[Item, Outcome]]:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        self._storing = True
        return batch

    def _run(self, batch: list[_Waiting[Item, Outcome]]) -> None:
        try:
            self._store_or_split(batch)
        except BaseException as error:  # every request of the batch learns it failed
            for waiting in batch:
                waiting.error = error
        finally:
            with self._condition:
                for waiting in batch:
                    waiting.done = True
                self._storing = False
                self._condition.notify_all()

    def _store_or_split(self, batch: list[_Waiting[Item, Outcome]]) -> None:
        try:
            outcomes = self._store([waiting.item for waiting in batch])
        except Exception as error:
            if len(batch) == 1 or not self._split_on(error):
                raise
            half = len(batch) // 2
            for part in (batch[:half], batch[half:]):
                self._stored_apart(part)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            waiting.outcome = outcome

    def _stored_apart(self, part: list[_Waiting[Item, Outcome]]) -> None:
        """Store part of a failed batch; its failure stays with its own requests."""
        try:
            self._store_or_split(part)
        except Exception as error:
            for waiting in part:
                waiting.error = error
