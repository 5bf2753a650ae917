"""The database as plain values, so a test can prove a request changed nothing."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import select

from models.base import Base
from models.db import SessionFactory
from tests.support.cleanup import tables_with_rows

State = dict[str, list[tuple[Any, ...]]]

# Columns a refused request may still write: a token's last use is recorded once it
# authenticates, whatever the request then does. And the bookkeeping of work committed before
# the request, which the relay and the workers carry on with meanwhile (a new row still shows).
NOT_STATE = {
    ("api_tokens", "last_used_at"),
    *(("outbox", c) for c in ("dispatched_at", "completed_at", "attempts", "last_error")),
}


def database_state(sessions: SessionFactory, tables: Collection[str] | None = None) -> State:
    """Every row of every table (or of the named `tables`).

    One probe names the tables that hold rows, and only those are read: a test's database
    has rows in a few of the ~50 tables, and a fuzz test takes two snapshots per example."""
    with sessions() as fresh:
        holding = set(fresh.scalars(tables_with_rows()))
        state = {
            table.name: sorted(
                tuple(str(value) for value in row)
                for row in fresh.execute(
                    select(*(c for c in table.columns if (table.name, c.name) not in NOT_STATE))
                )
            )
            if table.name in holding
            else []
            for table in Base.metadata.sorted_tables
            if tables is None or table.name in tables
        }
        fresh.rollback()
    return state


def change_checker(
    sessions: SessionFactory, tables: Collection[str] | None = None
) -> Callable[[], None]:
    """Call it once before a request and once after: the second call asserts no change."""
    snapshots: list[State] = []

    def check() -> None:
        snapshots.append(database_state(sessions, tables))
        if len(snapshots) > 1:
            assert snapshots[-1] == snapshots[0], "the request changed the database"

    return check


def only_the_run_was_recorded(before: State, after: State, action: str) -> None:
    """Between two snapshots: the run's record and its one audit event, nothing else."""
    new = {t: sorted(set(after[t]) - set(before[t])) for t in after}
    gone = {t: sorted(set(before[t]) - set(after[t])) for t in before}
    assert not any(gone.values()), gone
    assert len(new.pop("odock_reconcile_runs")) == 1
    (event,) = new.pop("audit_events")
    assert action in event, event
    assert not any(new.values()), new
