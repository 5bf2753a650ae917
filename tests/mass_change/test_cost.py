"""What the gate costs a SCIM deactivation it lets through: every deactivation of an
organisation passes the same gate row in turn, so the row is locked for as little as can be,
and the window, the active people and the counted changes are read in one statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from models.actions import mass_change
from models.actor import Actor
from models.entities import MassChange, MassChangeGate, User
from models.enums import ChangeKind, ChangeStatus, Source, UserStatus
from tests.mass_change.conftest import Gated, statuses
from tests.scim.payloads import okta_deactivate
from tests.support import factories as f
from tests.support.sql_events import listening

SCIM = Actor(Source.SCIM, "okta")
DEACTIVATE = mass_change.GateRequest(ChangeKind.DEACTIVATE, reason="test")
DEACTIVATIONS = 10


@dataclass
class Seen:
    statements: int = 0
    while_gate_locked: list[int] = field(default_factory=list)  # statements, per lock taken


@contextmanager
def watching(database: str) -> Iterator[Seen]:
    """Statements on the application's database (not the embedded broker's), and how many
    ran on a connection between its taking the gate row and its commit or rollback."""
    seen = Seen()
    locked: dict[int, int] = {}

    def statement(conn, _cursor, sql: str, *_args) -> None:
        if conn.engine.url.database != database:
            return
        seen.statements += 1
        if id(conn) in locked:
            locked[id(conn)] += 1
        elif "mass_change_gates" in sql and ("DO UPDATE" in sql or "FOR UPDATE" in sql):
            locked[id(conn)] = 0

    def ended(conn) -> None:
        if id(conn) in locked:
            seen.while_gate_locked.append(locked.pop(id(conn)))

    with listening(Engine, before_cursor_execute=statement, commit=ended, rollback=ended):
        yield seen


def test_a_scim_deactivation_passes_the_gate_in_few_statements(
    scim, gated: Gated, session, sessions, engine
):
    """Before: 23 statements a deactivation on PostgreSQL, 7 of them and a commit in the
    gate's transaction, the row locked through 4 of them; 24 on SQLite."""
    mass_change.set_thresholds(
        session,
        organisation=gated.org,
        actor=f.SETUP,
        threshold_count=1000,
        threshold_percent=50,  # the active people are counted too
    )
    session.commit()
    emails = [f"p{n}@gated.test" for n in range(DEACTIVATIONS * 2)]
    ids = gated.scim_users(scim, *emails)

    with watching(engine.url.database) as seen:
        for scim_id in ids[:DEACTIVATIONS]:
            assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    assert statuses(sessions, emails[:DEACTIVATIONS]) == [UserStatus.REVOKED] * DEACTIVATIONS
    per_deactivation = 19 if engine.dialect.name == "postgresql" else 20
    assert seen.statements <= per_deactivation * DEACTIVATIONS + 1  # + the token's use, once
    if engine.dialect.name == "postgresql":
        # Locked by the gate's own short transaction: one count, then the commit.
        assert seen.while_gate_locked == [1] * DEACTIVATIONS


def test_changes_out_of_the_window_are_not_counted_and_go_once_two_windows_old(
    session, sessions, gated: Gated
):
    people = [f.make_user(session, gated.org, email=f"w{n}@gated.test") for n in range(4)]
    session.commit()
    for person in people[:3]:
        assert _admit(sessions, person.id)
    _age(sessions, minutes=15)  # one window (10 minutes) and a half ago

    assert _admit(sessions, people[3].id)  # the three are out of the window: 1 of 3 counted
    assert _applied(sessions) == 4  # kept: not two windows old yet

    _age(sessions, minutes=10)  # three are 25 minutes old, the fourth 10
    person = f.make_user(session, gated.org, email="last@gated.test")
    session.commit()
    assert _admit(sessions, person.id)
    assert _applied(sessions) == 1  # all that left the window went, the last one counted


@pytest.mark.parametrize(
    ("count", "percent", "applied", "reason"),
    [
        (2, 50, 2, "3 destructive changes within 10 minutes, more than the threshold of 2"),
        (5, 25, 2, "more than 25% of the 9 active people"),
        (3, 40, 3, "4 destructive changes within 10 minutes, more than the threshold of 3"),
        (0, 30, 2, "more than 30% of the 9 active people"),
    ],
)
def test_the_active_people_are_counted_as_far_as_a_decision_needs(
    scim, client, gated: Gated, sessions, count, percent, applied, reason
):
    """Counting stops at count threshold / percentage people (two with 2 and 50%, while nine
    are active): every decision and its reason is the exact count's."""
    settings = {"threshold_count": count, "threshold_percent": percent}
    changed = client.put("/api/v1/mass-change/settings", json=settings, headers=gated.admin_headers)
    assert changed.status_code == 200, changed.json
    emails = [f"p{n}@gated.test" for n in range(8)]  # nine active people with the admin
    ids = gated.scim_users(scim, *emails)

    for scim_id in ids[:5]:
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    revoked = statuses(sessions, emails[:5]).count(UserStatus.REVOKED)
    assert revoked == applied
    with sessions() as fresh:
        tripped = fresh.scalars(
            select(func.count())
            .select_from(MassChangeGate)
            .where(MassChangeGate.batch_id.is_not(None))
        ).one()
    assert tripped == 1
    listed = client.get("/api/v1/mass-change/holds", headers=gated.admin_headers).json["items"]
    assert len(listed) == 5 - applied
    assert reason in _trip_reason(sessions)


def _admit(sessions, user_id) -> bool:
    with sessions() as own:
        admitted = mass_change.admit(
            own, user=own.get_one(User, user_id), request=DEACTIVATE, actor=SCIM
        )
        own.commit()
        return admitted


def _age(sessions, *, minutes: int) -> None:
    with sessions() as own:
        for change in own.scalars(select(MassChange)):
            change.created_at -= timedelta(minutes=minutes)
        own.commit()


def _applied(sessions) -> int:
    with sessions() as fresh:
        return (
            fresh.scalar(
                select(func.count())
                .select_from(MassChange)
                .where(MassChange.status == ChangeStatus.APPLIED)
            )
            or 0
        )


def _trip_reason(sessions) -> str:
    from models.entities import AuditEvent

    with sessions() as fresh:
        event_ = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "mass_change.gate_tripped")
        ).one()
        return str(event_.after["reason"])


@dataclass
class Writes:
    rolled_back_inserts: int = 0  # INSERTs into mass_changes that a rollback then undid
    gate_locks: int = 0


@contextmanager
def watching_writes(database: str) -> Iterator[Writes]:
    seen = Writes()
    inserted: dict[int, int] = {}

    def statement(conn, cursor, sql: str, *_args) -> None:
        if conn.engine.url.database != database:
            return
        if sql.lstrip().upper().startswith("INSERT INTO MASS_CHANGES"):
            inserted[id(conn)] = inserted.get(id(conn), 0) + max(cursor.rowcount, 0)
        if "mass_change_gates" in sql and ("DO UPDATE" in sql or "FOR UPDATE" in sql):
            seen.gate_locks += 1

    def committed(conn) -> None:
        inserted.pop(id(conn), None)

    def rolled_back(conn) -> None:
        seen.rolled_back_inserts += inserted.pop(id(conn), 0)

    with listening(Engine, after_cursor_execute=statement, commit=committed, rollback=rolled_back):
        yield seen


def test_once_the_gate_holds_a_request_writes_only_its_hold_and_a_repeat_writes_nothing(
    scim, gated: Gated, sessions, engine
):
    """Before (PostgreSQL): every deactivation after the trip first wrote a counted change in
    a transaction of its own, locked the gate there and rolled both back, then locked the
    gate again to hold it: a repeated request (an IdP's retry) cost an insert, a rollback and
    two lock waits, and changed nothing."""
    from tests.mass_change.conftest import THRESHOLD, audit_actions, changes

    emails = [f"p{n}@gated.test" for n in range(THRESHOLD + 2)]
    ids = gated.scim_users(scim, *emails)
    for scim_id in ids[: THRESHOLD + 1]:  # the last of these trips the gate and is held
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    with watching_writes(engine.url.database) as seen:
        for _ in range(3):  # the held person's deactivation, again and again
            again = scim.patch(f"/Users/{ids[THRESHOLD]}", okta_deactivate())
            assert again.status_code == 200 and again.json["active"] is False
        another = scim.patch(f"/Users/{ids[THRESHOLD + 1]}", okta_deactivate())
        assert another.status_code == 200 and another.json["active"] is False

    assert seen.rolled_back_inserts == 0
    assert seen.gate_locks <= 4  # one per request, to decide against the tripped batch
    assert statuses(sessions, emails) == [UserStatus.REVOKED] * THRESHOLD + [UserStatus.ACTIVE] * 2
    assert len(changes(sessions, ChangeStatus.HELD)) == 2
    assert len(changes(sessions, ChangeStatus.APPLIED)) == THRESHOLD
    held_audits = [a for a in audit_actions(sessions) if a != "mass_change.settings_changed"]
    assert held_audits == ["mass_change.gate_tripped", "mass_change.held", "mass_change.held"]
