"""Many end dates due together pass the mass-change gate like any source that takes access
from many people at once: with a real worker and beat whose clocks run ahead, a batch over
the organisation's threshold is held whole (audited, the admins alerted at a real HTTP sink)
while another organisation's small batch is revoked on time; an admin's approval revokes the
held people (source `schedule`), a date moved away takes its held revocation back, and a
discard keeps access and clears the passed date so no later beat revokes after all."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import access_end, lifecycle, mass_change, mass_change_holds
from models.actor import Actor
from models.base import utcnow
from models.db import SessionFactory
from models.entities import AuditEvent, MassChange, Organisation, User
from models.enums import ChangeKind, ChangeStatus, Role, Source, UserStatus
from tests.access_end.conftest import (
    LEAD,
    TICK,
    assert_revoked_once_on_time,
    audited,
    revocations,
)
from tests.support import factories as f
from tests.support.wait import wait_until
from worker.tasks.access_end import end_due

THRESHOLD = 3
ADMIN = Actor(Source.ADMIN, "admin@example.com")
SCHEDULE = Source.SCHEDULE


def _gated_org(session: Session, name: str) -> tuple[Organisation, User]:
    org = f.make_org(session, name)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin@{name.lower()}.test")
    mass_change.set_thresholds(session, organisation=org, actor=f.SETUP, threshold_count=THRESHOLD)
    return org, admin


def _leavers(session: Session, org: Organisation, count: int, ends) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    people = [f.make_user(session, org) for _ in range(count)]
    for person in people:
        f.make_key(session, org, owner=person)
        access_end.set_access_end(session, user=person, ends_at=ends, actor=f.SETUP)
    return [person.id for person in people]


def _held(sessions: SessionFactory, org_id: uuid.UUID) -> list[MassChange]:
    """Read in a session of its own (SQLite: a session that read holds the write lock)."""
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(MassChange).where(
                    MassChange.organisation_id == org_id, MassChange.status == ChangeStatus.HELD
                )
            )
        )


def test_a_batch_over_the_threshold_is_held_whole_and_a_small_one_ends_on_time(
    client, session, sessions, settings, hooks, run_ahead
) -> None:
    big, admin = _gated_org(session, "Big")
    small, _ = _gated_org(session, "Small")
    token = f.admin_token(session, big, admin)
    f.make_hook(
        session,
        big.id,
        hooks.url("holds"),
        secret_key=settings.secret_key,
        name="holds",
        events=[mass_change.EVENT_HELD],
    )
    ends = (utcnow() + timedelta(days=20)).replace(microsecond=0)
    many = _leavers(session, big, THRESHOLD + 3, ends)
    few = _leavers(session, small, THRESHOLD, ends)
    big_id = big.id
    session.commit()

    run_ahead(ends - LEAD, workers=1, beats=1)

    assert_revoked_once_on_time(session, sessions, few, ends)  # at the threshold: not over it
    session.commit()
    held = wait_until(
        lambda: len(_held(sessions, big_id)) == len(many) and _held(sessions, big_id),
        what="the whole batch held",
    )
    assert {h.user_id for h in held} == set(many) and len({h.batch_id for h in held}) == 1
    (alert,) = wait_until(lambda: hooks.at("holds"), timeout=60, what="the admins' alert")
    assert alert.json["type"] == mass_change.EVENT_HELD
    assert alert.json["data"]["source"] == Source.SCHEDULE.value
    time.sleep(3 * TICK)  # more beats: still held, nobody revoked, nothing held twice
    assert len(_held(sessions, big_id)) == len(many)
    for user_id in many:
        assert session.get_one(User, user_id).status is UserStatus.ACTIVE
        assert revocations(session, user_id) == []
        assert audited(session, "mass_change.held", user_id) == 1
    session.commit()

    # A date moved away while held: that revocation is taken back, the rest still wait.
    moved = session.get_one(User, many[0])
    access_end.set_access_end(session, user=moved, ends_at=ends + timedelta(days=30), actor=ADMIN)
    session.commit()
    assert audited(session, "mass_change.superseded", many[0]) == 1
    session.commit()

    approved = client.post(
        f"/api/v1/mass-change/batches/{held[0].batch_id}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert approved.status_code == 200, approved.get_json()
    assert len(approved.get_json()["items"]) == len(many) - 1
    time.sleep(3 * TICK)
    session.expire_all()
    assert session.get_one(User, many[0]).status is UserStatus.ACTIVE
    for user_id in many[1:]:
        (revocation,) = revocations(session, user_id)
        assert revocation.source is Source.SCHEDULE
        assert session.get_one(User, user_id).status is UserStatus.REVOKED
        assert audited(session, "mass_change.approved", user_id) == 1


def test_a_discarded_batch_keeps_access_and_clears_the_passed_dates(session, sessions) -> None:
    org, _ = _gated_org(session, "Kept")
    ends = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    many = _leavers(session, org, THRESHOLD + 1, ends)
    org_id = org.id
    session.commit()

    with time_machine.travel(ends + timedelta(seconds=5), tick=False):
        assert end_due() == 0
        held = [session.get_one(MassChange, h.id) for h in _held(sessions, org_id)]
        assert len(held) == len(many)
        mass_change_holds.discard(session, holds=held, actor=ADMIN)
        session.commit()
        assert end_due() == 0  # the next beat does not revoke them after all

    session.expire_all()
    for user_id in many:
        person = session.get_one(User, user_id)
        assert person.status is UserStatus.ACTIVE and person.access_ends_at is None
        assert audited(session, "user.access_end_cleared", user_id) == 1
    session.commit()
    assert _held(sessions, org_id) == []


def test_a_date_that_comes_while_a_beat_runs_waits_for_the_next_beat_to_be_announced(
    session, sessions, monkeypatch
) -> None:
    """The beat tells the gate how many are due and then revokes them as of one moment: a
    batch whose date came between the two (a scan slowed by a busy machine) was revoked one
    by one without having been announced, so the first THRESHOLD went through and only the
    rest were held."""
    org, _ = _gated_org(session, "Straddled")
    ends = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    many = _leavers(session, org, THRESHOLD + 2, ends)
    org_id = org.id
    session.commit()
    announce = access_end.announce_due

    with time_machine.travel(ends - timedelta(seconds=1), tick=False) as clock:

        def announce_then_the_date_comes(session: Session, *, now: datetime, actor: Actor) -> None:
            announce(session, now=now, actor=actor)
            clock.shift(timedelta(seconds=2))

        monkeypatch.setattr(access_end, "announce_due", announce_then_the_date_comes)
        assert end_due() == 0  # nobody was due when it started
        monkeypatch.undo()
        assert end_due() == 0  # the next beat announces the whole batch: held

    session.expire_all()
    assert len(_held(sessions, org_id)) == len(many)
    for user_id in many:
        assert session.get_one(User, user_id).status is UserStatus.ACTIVE
        assert revocations(session, user_id) == []


def test_the_gate_turned_off_lets_every_due_date_end(session, sessions) -> None:
    org, _ = _gated_org(session, "Open")
    mass_change.set_thresholds(session, organisation=org, actor=f.SETUP, enabled=False)
    ends = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    many = _leavers(session, org, THRESHOLD + 2, ends)
    session.commit()

    with time_machine.travel(ends, tick=False):
        assert end_due() == len(many)
    session.expire_all()
    assert all(session.get_one(User, u).status is UserStatus.REVOKED for u in many)


def _held_batch(session: Session, sessions: SessionFactory, name: str) -> list[uuid.UUID]:
    """THRESHOLD + 1 people whose date has passed, each revocation held by the gate."""
    org, _ = _gated_org(session, name)
    ends = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    many = _leavers(session, org, THRESHOLD + 1, ends)
    org_id = org.id
    session.commit()
    assert end_due() == 0
    assert len(_held(sessions, org_id)) == len(many)
    return many


def _hold_of(session: Session, user_id: uuid.UUID) -> MassChange:
    session.expire_all()
    return session.scalars(
        select(MassChange).where(MassChange.user_id == user_id, MassChange.source == SCHEDULE)
    ).one()


def test_a_held_person_revoked_another_way_closes_the_hold_as_superseded(session, sessions) -> None:
    many = _held_batch(session, sessions, "Overtaken")
    scim = Actor(Source.SCIM, "scim")
    deactivate = mass_change.GateRequest(ChangeKind.DEACTIVATE, reason="active=false")

    lifecycle.revoke(session, user=session.get_one(User, many[0]), actor=ADMIN, reason="gone")
    outcome = lifecycle.set_active(
        session, user=session.get_one(User, many[1]), active=False, actor=scim, gate=deactivate
    )
    session.commit()

    assert outcome is lifecycle.Outcome.APPLIED
    for user_id, by in ((many[0], "admin"), (many[1], "scim")):
        hold = _hold_of(session, user_id)
        assert hold.status is ChangeStatus.SUPERSEDED and hold.decided_by
        assert audited(session, "mass_change.superseded", user_id) == 1
        (event,) = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "mass_change.superseded",
                AuditEvent.target_id == str(user_id),
            )
        )
        assert event.after["note"] == f"the person was revoked by {by}"
        (revocation,) = revocations(session, user_id)
        assert revocation.source is Source(by)
    for user_id in many[2:]:  # the rest still wait for an admin
        assert _hold_of(session, user_id).status is ChangeStatus.HELD
    session.commit()
    assert end_due() == 0


def test_an_approval_is_not_superseded_by_the_revocation_it_applies(session, sessions) -> None:
    many = _held_batch(session, sessions, "Approved")
    holds = [_hold_of(session, user_id) for user_id in many]

    mass_change_holds.approve(session, holds=holds, actor=ADMIN)
    session.commit()

    for user_id in many:
        assert _hold_of(session, user_id).status is ChangeStatus.APPROVED
        assert audited(session, "mass_change.approved", user_id) == 1
        assert audited(session, "mass_change.superseded", user_id) == 0
        assert session.get_one(User, user_id).status is UserStatus.REVOKED


def test_a_cleared_date_closes_its_hold_as_superseded(session, sessions) -> None:
    many = _held_batch(session, sessions, "Cleared")

    person = session.get_one(User, many[0])
    access_end.set_access_end(session, user=person, ends_at=None, actor=ADMIN)
    session.commit()

    assert _hold_of(session, many[0]).status is ChangeStatus.SUPERSEDED
    assert audited(session, "mass_change.superseded", many[0]) == 1
    assert session.get_one(User, many[0]).status is UserStatus.ACTIVE
