"""The last-admin lock order: people first (in id order), the organisation row last, and no
person locked once the organisation row is held (models/actions/last_admin.py).

An admin's change of one person locks the person, then (when an ACTIVE ORG_ADMIN loses
access) the organisation row. A batch (an IdP event delivery, an LDAP run) that ends an
admin's access early in the batch holds the organisation row for the rest of it; if it then
locks a person it had not locked up front, and an admin is changing that person, each waits
for the other: PostgreSQL's deadlock detector aborts one (40P01). Before, an IdP batch locked
a person found by email (no link yet) only when their event came, and an LDAP run locked the
people it links by email only when it linked them. Now both lock every person they may change
up front, with the rest, in id order.

Each race (tests/lifecycle/test_membership_races.Race): the admin's request locks the person
and waits until the batch waits for that person, then ends their admin access (the
organisation row's lock). On SQLite the batch begins only once the admin committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from connectors.ldap.plan import Link, Plan
from models import person_lock
from models.actions import idp_events, mass_change
from models.actions.directory_connectors import create_connector
from models.actions.identities import link_identity
from models.actions.users import edit_user
from models.actor import Actor
from models.directory.apply import apply_directory_plan
from models.entities import DirectoryConnector, Organisation, ReceivedDelivery, User
from models.enums import Role, Source, UserStatus
from models.settings import Settings
from tests.events import okta_payloads as okta
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.support import factories as f

ADMIN = Actor(Source.ADMIN, "admin:carol@example.com")
LDAP = Actor(Source.LDAP, "ldap:corp")


@dataclass(frozen=True)
class Admins:
    org_id: uuid.UUID
    early: uuid.UUID  # the batch ends their admin access first
    late: uuid.UUID  # the batch reaches them later; an admin demotes them meanwhile
    kept: uuid.UUID  # an admin left, so neither change is refused
    late_email: str


@pytest.fixture
def admins(session: Session) -> Admins:
    org = f.make_org(session)
    mass_change.set_thresholds(session, organisation=org, actor=f.SETUP, enabled=False)
    early, late, kept = (f.make_user(session, org, role=Role.ORG_ADMIN) for _ in range(3))
    session.commit()
    return Admins(org.id, early.id, late.id, kept.id, late.email)


def _admin_demotes_late(admins: Admins) -> tuple[Callable[[Session], None], ...]:
    """The admin API's edit of the late admin: its person lock, then the rest of the edit."""

    def lock(own: Session) -> None:
        person_lock.read_locked(own, own.get_one(User, admins.late))

    def demote(own: Session) -> None:
        edit_user(own, user=own.get_one(User, admins.late), role=Role.USER, actor=ADMIN)

    return lock, demote


def _assert_both_applied(session: Session, admins: Admins) -> None:
    session.rollback()
    session.expire_all()  # the objects it read before the race
    assert session.get_one(User, admins.late).role is Role.USER
    assert session.get_one(User, admins.kept).status is UserStatus.ACTIVE


def test_an_idp_batch_reaching_a_person_found_by_email_after_revoking_an_admin(
    session: Session,
    race: Race,  # noqa: F811
    admins: Admins,
) -> None:
    """An Okta delivery: the early admin (linked to Okta) deactivated, then a profile update
    of the late admin, whom no Okta link names yet (found by email, linked on the way)."""
    early = session.get_one(User, admins.early)
    link_identity(session, user=early, source=Source.OKTA, external_id="00uEARLY", actor=f.SETUP)
    payload = okta.delivery(
        okta.event("user.lifecycle.deactivate", [okta.user_target("00uEARLY", early.email)]),
        okta.event(
            "user.account.update_profile",
            [okta.user_target("00uLATE", admins.late_email, name="Late Admin")],
        ),
    )
    recorded = idp_events.accept_delivery(
        session,
        organisation_id=admins.org_id,
        channel="okta",
        delivery_id=payload["eventId"],
        payload=payload,
    )
    session.commit()
    delivery_id = recorded.delivery.id

    def apply_batch(own: Session) -> None:
        delivery = own.get_one(ReceivedDelivery, delivery_id)
        idp_events.process_received(own, [delivery])
        assert [r["outcome"] for r in delivery.results] == ["applied", "applied"], delivery.results

    race.run(*_admin_demotes_late(admins), apply_batch)

    _assert_both_applied(session, admins)
    assert session.get_one(User, admins.early).status is UserStatus.REVOKED
    assert session.get_one(User, admins.late).name == "Late Admin"


def _connector(session: Session, settings: Settings, org_id: uuid.UUID) -> DirectoryConnector:
    return create_connector(
        session,
        organisation=session.get_one(Organisation, org_id),
        fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )


def test_an_ldap_run_linking_a_person_after_demoting_an_admin_it_links(
    session: Session,
    settings: Settings,
    race: Race,  # noqa: F811
    admins: Admins,
) -> None:
    """An LDAP run links two admin accounts found by email: the first's groups make them a
    USER (the organisation row's lock), then the second's link locks them."""
    connector_id = _connector(session, settings, admins.org_id).id
    early, late = session.get_one(User, admins.early), session.get_one(User, admins.late)

    def link(user: User, role: str) -> Link:
        entry = f"ldap-{user.id}"
        return Link(
            external_id=entry, dn=f"uid={entry},dc=x", email=user.email, name=user.name,
            role=role, user_id=str(user.id),
        )  # fmt: skip

    plan = Plan(links=[link(early, "USER"), link(late, "")])
    session.commit()  # and nothing read after it: on SQLite that would hold the write lock

    def apply_run(own: Session) -> None:
        connector = own.get_one(DirectoryConnector, connector_id)
        applied = apply_directory_plan(own, connector=connector, plan=plan, actor=LDAP)
        assert applied.errors == []

    race.run(*_admin_demotes_late(admins), apply_run)

    _assert_both_applied(session, admins)
    assert session.get_one(User, admins.early).role is Role.USER
