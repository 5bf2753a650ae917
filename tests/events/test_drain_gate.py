"""A drain batch's revocations pass the mass-change gate together: counted in one short
transaction, not one per event, with the same decisions as one by one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from models.actions import idp_events, mass_change
from models.actions.identities import link_identity
from models.entities import MassChange, ReceivedDelivery
from models.enums import ChangeStatus, Role, Source, UserStatus
from tests.events.conftest import generic
from tests.events.test_drain import sent_tasks  # noqa: F401 (fixture)
from tests.support import factories as f
from tests.support.sql_events import listening


def linked_people(session, org, count: int) -> list:
    people = []
    for n in range(count):
        person = f.make_user(session, org, email=f"p{n}@drain.test")
        f.make_key(session, org, owner=person)
        link_identity(
            session, user=person, source=Source.EVENTS, external_id=f"ext-{n}", actor=f.SETUP
        )
        people.append(person)
    return people


def deactivations(session, org, external_ids: list[str]) -> None:
    for n, external_id in enumerate(external_ids):
        payload = generic("user.deactivated", user={"external_id": external_id})
        idp_events.accept_delivery(
            session, organisation_id=org.id, channel="events", delivery_id=f"d{n}", payload=payload
        )


def gate(session, org, threshold: int) -> None:
    mass_change.set_thresholds(
        session, organisation=org, actor=f.SETUP, threshold_count=threshold, window_minutes=10
    )


def counted(sessions, status: ChangeStatus) -> int:
    with sessions() as fresh:
        return fresh.scalar(
            select(func.count()).select_from(MassChange).where(MassChange.status == status)
        )


def outcomes(sessions) -> list[str]:
    with sessions() as fresh:
        rows = fresh.scalars(select(ReceivedDelivery).order_by(ReceivedDelivery.delivery_id))
        return [result["outcome"] for row in rows for result in row.results]


@contextmanager
def counting(engine) -> Iterator[dict[str, int]]:
    seen = {"statements": 0, "commits": 0}

    def statement(*_args) -> None:
        seen["statements"] += 1

    def commit(*_args) -> None:
        seen["commits"] += 1

    with listening(engine, before_cursor_execute=statement, commit=commit):
        yield seen


def test_a_batch_of_revocations_passes_the_gate_in_one_transaction(session, sessions, engine):
    """Each event used to be counted in a transaction of its own (10 statements and a commit
    per revocation, 22 statements an event in all); the batch now counts them in one."""
    from worker.runtime import runtime
    from worker.tasks.idp_events import drain_deliveries

    if engine.dialect.name != "postgresql":
        pytest.skip("counted ahead on PostgreSQL; SQLite's one writer counts in the batch")
    org = f.make_org(session)
    gate(session, org, threshold=1000)
    linked_people(session, org, 10)
    deactivations(session, org, [f"ext-{n}" for n in range(10)])
    session.commit()

    with counting(runtime().engine) as seen:
        assert drain_deliveries(str(org.id)) == 10

    assert outcomes(sessions) == ["applied"] * 10
    assert counted(sessions, ChangeStatus.APPLIED) == 10
    assert seen["commits"] <= 6  # the turn taken and let go, the count, the batch, the last look
    # 16.3 before what the people own (tokens, invitations, budgets) was read for the batch,
    # 13.6 after
    assert seen["statements"] / 10 <= 14


def test_the_gate_trips_within_a_batch_as_it_did_one_by_one(session, sessions):
    from worker.tasks.idp_events import drain_deliveries

    org = f.make_org(session)
    f.make_user(session, org, role=Role.ORG_ADMIN, email="admin@drain.test")
    gate(session, org, threshold=3)
    people = linked_people(session, org, 5)
    deactivations(session, org, [f"ext-{n}" for n in range(5)])
    session.commit()

    assert drain_deliveries(str(org.id)) == 5

    assert outcomes(sessions) == ["applied"] * 3 + ["held"] * 2
    assert counted(sessions, ChangeStatus.APPLIED) == 3
    assert counted(sessions, ChangeStatus.HELD) == 2
    session.expire_all()
    assert [p.status for p in people] == [UserStatus.REVOKED] * 3 + [UserStatus.ACTIVE] * 2


def test_changes_counted_ahead_that_the_batch_did_not_make_are_taken_back(session, sessions):
    """A person deactivated twice in a batch, and one revoked already: one change made, one
    counted (left counted, they would trip the gate early)."""
    from worker.tasks.idp_events import drain_deliveries

    org = f.make_org(session)
    gate(session, org, threshold=1000)
    _first, gone = linked_people(session, org, 2)
    deactivations(session, org, ["ext-0", "ext-0", "ext-1"])
    session.commit()
    with sessions() as other:
        other.get_one(type(gone), gone.id).status = UserStatus.REVOKED
        other.commit()

    assert drain_deliveries(str(org.id)) == 3

    assert sorted(outcomes(sessions)) == ["applied", "unchanged", "unchanged"]
    assert counted(sessions, ChangeStatus.APPLIED) == 1
