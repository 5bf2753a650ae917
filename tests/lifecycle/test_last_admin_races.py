"""The last Organisation Admin under concurrency (models/actions/last_admin.py): the decision is
made under the organisation row's lock, so two changes at once compose as if one came after
the other.

- Two admins ending each other's admin access at once (demote, revoke): the later is refused
  (LastAdmin), one admin stays. Without the lock each read the other still an admin and both
  were made: nobody was left.
- An identity source revoking both admins at once: both are cut off, and the organisation
  without an admin is recorded once. Without the lock neither saw the other gone.

Each race is two transactions (tests/lifecycle/test_membership_races.Race): the first acts and,
on PostgreSQL, waits until the second waits for a lock, then commits. On SQLite the second
begins only once the first committed: the same serial end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import last_admin, lifecycle
from models.actions import users as user_actions
from models.actor import Actor
from models.entities import AuditEvent, User
from models.enums import Role, Source, UserStatus
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.support import factories as f

Ending = Callable[[Session, uuid.UUID, Actor], None]


def _demote(own: Session, user_id: uuid.UUID, actor: Actor) -> None:
    user = own.get_one(User, user_id)
    user_actions.edit_user(own, user=user, role=Role.USER, actor=actor)


def _revoke(own: Session, user_id: uuid.UUID, actor: Actor) -> None:
    lifecycle.revoke(own, user=own.get_one(User, user_id), actor=actor, reason="left")


def _deactivate(own: Session, user_id: uuid.UUID, actor: Actor) -> None:
    user = own.get_one(User, user_id)
    lifecycle.set_active(own, user=user, active=False, actor=actor, reason="SCIM active=false")


ENDINGS: dict[str, Ending] = {"demote": _demote, "revoke": _revoke}


@dataclass(frozen=True)
class Admins:
    org_id: uuid.UUID
    first: uuid.UUID
    second: uuid.UUID


@pytest.fixture
def admins(session: Session) -> Admins:
    org = f.make_org(session)
    first = f.make_user(session, org, role=Role.ORG_ADMIN)
    second = f.make_user(session, org, role=Role.ORG_ADMIN)
    session.commit()
    return Admins(org.id, first.id, second.id)


def _active_admins(session: Session, org_id: uuid.UUID) -> list[uuid.UUID]:
    session.rollback()
    return list(
        session.scalars(
            select(User.id).where(
                User.organisation_id == org_id,
                User.role == Role.ORG_ADMIN,
                User.status == UserStatus.ACTIVE,
            )
        )
    )


@pytest.mark.parametrize(
    ("first_ending", "second_ending"),
    [("demote", "demote"), ("revoke", "demote"), ("demote", "revoke")],
)
def test_two_admins_ending_each_other_leave_one(
    race: Race,  # noqa: F811
    session: Session,
    admins: Admins,
    first_ending: str,
    second_ending: str,
) -> None:
    by_first = Actor(Source.ADMIN, "admin:first", admins.first)
    by_second = Actor(Source.ADMIN, "admin:second", admins.second)
    refused: list[last_admin.LastAdmin] = []

    def second(own: Session) -> None:
        try:
            ENDINGS[second_ending](own, admins.first, by_second)
        except last_admin.LastAdmin as error:
            refused.append(error)

    race.run(
        lambda own: ENDINGS[first_ending](own, admins.second, by_first),
        lambda own: None,
        second,
    )
    assert len(refused) == 1
    assert _active_admins(session, admins.org_id) == [admins.first]


def test_a_source_revoking_both_admins_at_once_records_no_admin_once(
    race: Race,  # noqa: F811
    session: Session,
    admins: Admins,
) -> None:
    scim = Actor(Source.SCIM, "scim")
    race.run(
        lambda own: _deactivate(own, admins.second, scim),
        lambda own: None,
        lambda own: _deactivate(own, admins.first, scim),
    )
    assert _active_admins(session, admins.org_id) == []
    (event,) = session.scalars(
        select(AuditEvent).where(
            AuditEvent.organisation_id == admins.org_id,
            AuditEvent.action == last_admin.NO_ACTIVE_ADMIN,
        )
    )
    assert event.after is not None and event.after["user_id"] == str(admins.first)
