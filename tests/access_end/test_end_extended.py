"""A renewed contract: the schedule revoked a person whose end date passed between syncs, and
the source that set that date moves it later (or clears it) and says they are active: they come
back, audited, with what the revocation disabled. A push repeating the passed date, or an
admin's revocation since, does not bring them back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.scim.schemas import ENTERPRISE, USER
from models.actions import access_end, lifecycle
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, Revocation, User
from models.enums import Source, UserStatus
from models.errors import InvalidTransition
from tests.access_end.conftest import scim_user_id
from tests.scim.conftest import ScimClient
from tests.support import factories as f

SCHEDULE = Actor(Source.SCHEDULE, "access-end schedule")
ADMIN = Actor(Source.ADMIN, "admin")
PASSED = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
RENEWED = (utcnow() + timedelta(days=90)).replace(microsecond=0)


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _body(ends_at: str | None, *, active: bool = True) -> dict[str, Any]:
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": "contractor@example.com",
        "emails": [{"value": "contractor@example.com", "primary": True}],
        "active": active,
        **({ENTERPRISE: {"employeeLeaveDateTime": ends_at}} if ends_at else {}),
    }


@pytest.fixture
def ended(client, session: Session) -> tuple[ScimClient, str, Any]:
    """A SCIM person whose leave date passed, revoked by the schedule (with a key)."""
    org = f.make_org(session)
    scim = ScimClient(client, f.scim_token(session, org))
    session.commit()
    created = scim.post("/Users", _body(_iso(PASSED)))
    assert created.status_code == 201, created.json
    scim_id = str(created.json["id"])
    user_id = scim_user_id(session, scim_id)
    f.make_key(session, org, owner=session.get_one(User, user_id))
    session.commit()
    outcome = access_end.end_access(session, user_id=user_id, now=utcnow(), actor=SCHEDULE)
    assert outcome is lifecycle.Outcome.APPLIED
    session.commit()
    return scim, scim_id, user_id


def _status(session: Session, user_id: Any) -> UserStatus:
    session.expire_all()
    status = session.get_one(User, user_id).status
    session.commit()  # SQLite: a session that read holds the write lock until it ends
    return status


def _put(scim: ScimClient, scim_id: str, body: dict[str, Any]) -> None:
    answer = scim.put(f"/Users/{scim_id}", body)
    assert answer.status_code == 200, answer.json


def test_the_schedules_revocation_records_the_date_and_who_set_it(session, ended) -> None:
    _, _, user_id = ended
    revocation = session.scalars(select(Revocation).where(Revocation.user_id == user_id)).one()
    assert lifecycle.ended_access(revocation) == (PASSED, Source.SCIM)


def test_a_put_repeating_the_passed_date_with_active_keeps_them_revoked(session, ended) -> None:
    scim, scim_id, user_id = ended
    for _ in range(2):  # an IdP re-sends the profile routinely
        _put(scim, scim_id, _body(_iso(PASSED)))
        assert _status(session, user_id) is UserStatus.REVOKED


@pytest.mark.parametrize("renewal", [_iso(RENEWED), None], ids=["later-date", "no-date"])
def test_the_scim_source_moving_its_date_later_brings_them_back(session, ended, renewal) -> None:
    scim, scim_id, user_id = ended
    _put(scim, scim_id, _body(renewal))
    assert _status(session, user_id) is UserStatus.ACTIVE
    back = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "user.reactivated", AuditEvent.target_id == str(user_id)
        )
    ).one()
    assert back.source is Source.SCIM
    assert back.after["access_end_extended_from"] == PASSED.isoformat()
    assert len(back.after["keys_restored"]) == 1
    person = session.get_one(User, user_id)
    assert person.access_ends_at == (RENEWED if renewal else None)
    assert session.scalars(select(Revocation.undone_at)).one() is not None
    session.commit()


def test_a_later_date_said_inactive_keeps_them_revoked(session, ended) -> None:
    scim, scim_id, user_id = ended
    _put(scim, scim_id, _body(_iso(RENEWED), active=False))
    assert _status(session, user_id) is UserStatus.REVOKED


def test_an_admins_revocation_after_the_schedules_is_not_undone_by_a_later_date(
    session, ended
) -> None:
    scim, scim_id, user_id = ended
    person = session.get_one(User, user_id)
    assert lifecycle.reactivate(session, user=person, actor=ADMIN) is lifecycle.Outcome.APPLIED
    lifecycle.revoke(session, user=person, actor=ADMIN, reason="security incident")
    session.commit()
    _put(scim, scim_id, _body(_iso(RENEWED)))
    assert _status(session, user_id) is UserStatus.REVOKED


def test_an_admin_revoking_whom_the_schedule_revoked_pins_them(session, ended) -> None:
    """The admin cannot revoke again, but means to keep the person out: the admin stands
    beside the schedule, so the renewed date lets the schedule go and the person stays out
    until an admin brings them back."""
    scim, scim_id, user_id = ended
    person = session.get_one(User, user_id)
    pinned = lifecycle.revoke(session, user=person, actor=ADMIN, reason="kept out")
    session.commit()
    assert lifecycle.standing_sources(pinned) == [Source.SCHEDULE, Source.ADMIN]
    _put(scim, scim_id, _body(_iso(RENEWED)))
    assert _status(session, user_id) is UserStatus.REVOKED
    joined = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.revocation_joined")
    ).one()
    assert (joined.source, joined.after["reason"]) == (Source.ADMIN, "kept out")
    with pytest.raises(InvalidTransition):  # pinned already: nothing more to add
        lifecycle.revoke(session, user=session.get_one(User, user_id), actor=ADMIN)
    session.rollback()
    person = session.get_one(User, user_id)
    assert lifecycle.reactivate(session, user=person, actor=ADMIN) is lifecycle.Outcome.APPLIED
    session.commit()


def test_another_source_cannot_release_the_date_it_did_not_set(session, ended) -> None:
    _, _, user_id = ended
    person = session.get_one(User, user_id)
    ldap = Actor(Source.LDAP, "ldap")
    access_end.set_access_end(session, user=person, ends_at=RENEWED, actor=ADMIN)
    assert lifecycle.set_active(session, user=person, active=True, actor=ldap) is (
        lifecycle.Outcome.REFUSED
    )
    assert person.status is UserStatus.REVOKED
    session.commit()


def test_a_create_linking_them_with_a_renewed_date_brings_them_back(session, ended) -> None:
    """The IdP deleted the SCIM user and provisions the person again (same email) with a
    renewed date: the create applies the date before `active`, as PUT and PATCH do, so the
    renewal takes back the schedule's revocation instead of being judged on the passed date."""
    scim, scim_id, user_id = ended
    assert scim.delete(f"/Users/{scim_id}").status_code == 204
    created = scim.post("/Users", _body(_iso(RENEWED)))
    assert created.status_code == 201, created.json
    assert created.json["active"] is True
    assert _status(session, user_id) is UserStatus.ACTIVE
    person = session.get_one(User, user_id)
    assert person.access_ends_at == RENEWED
    session.commit()
