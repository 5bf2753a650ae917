"""Two identity sources hold one person out: whichever order they spoke in, the person comes
back (but by an admin) only once each of them lets go, and every step is audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan, Reactivate, Revoke
from connectors.scim.fields import ScimEmailValue, ScimUserFields
from models.actions import lifecycle, mass_change
from models.actions import scim as scim_actions
from models.actions.directory_connectors import create_connector
from models.actions.identities import link_identity
from models.actor import Actor
from models.directory.apply import apply_directory_plan
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    MassChange,
    ScimUser,
    VirtualApiKey,
)
from models.enums import ChangeStatus, Source, UserStatus
from models.settings import Settings
from tests.support import factories as f

SCIM = Actor(Source.SCIM, "scim")
LDAP = Actor(Source.LDAP, "ldap:corp")
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


@dataclass
class Person:
    scim_user: ScimUser
    ldap_id: str
    email: str
    key: VirtualApiKey


@dataclass
class World:
    session: Session
    connector: DirectoryConnector
    people: list[Person]

    def scim(self, person: Person, active: bool) -> None:
        email = person.email
        fields = ScimUserFields(
            user_name=email, emails=(ScimEmailValue(email, primary=True),), active=active
        )
        scim_actions.replace_scim_user(
            self.session, scim_user=person.scim_user, fields=fields, actor=SCIM
        )
        self.session.flush()

    def ldap(self, person: Person, enabled: bool) -> None:
        ref = {
            "user_id": str(person.scim_user.user_id),
            "external_id": person.ldap_id,
            "email": person.email,
        }
        plan = Plan(kind="full")
        if enabled:
            plan.reactivates.append(Reactivate(**ref))
        else:
            plan.revokes.append(Revoke(**ref, reason="disabled in the directory"))
        applied = apply_directory_plan(
            self.session, connector=self.connector, plan=plan, actor=LDAP
        )
        assert applied.errors == []
        self.session.flush()

    def actions(self, person: Person) -> list[str]:
        query = (
            select(AuditEvent.action)
            .where(AuditEvent.target_id == str(person.scim_user.user_id))
            .order_by(AuditEvent.occurred_at)
        )
        return list(self.session.scalars(query))


def make_world(session: Session, settings: Settings, *, gate: bool) -> World:
    """Two people provisioned by SCIM and linked to an LDAP directory too, each with a key;
    with `gate`, the mass-change gate admits one SCIM deactivation and holds the next."""
    org = f.make_org(session)
    connector = create_connector(
        session,
        organisation=org,
        fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    thresholds = {"threshold_count": 1, "threshold_percent": 0} if gate else {"enabled": False}
    mass_change.set_thresholds(session, organisation=org, actor=f.SETUP, **thresholds)
    people = []
    for n in range(2):
        email = f"p{n}-{org.slug}@example.com"
        fields = ScimUserFields(user_name=email, emails=(ScimEmailValue(email, primary=True),))
        scim_user = scim_actions.create_scim_user(
            session, organisation=org, fields=fields, actor=SCIM
        )
        ldap_id = f"ldap-{uuid.uuid4()}"
        link_identity(
            session,
            user=scim_user.user,
            source=Source.LDAP,
            external_id=ldap_id,
            actor=f.SETUP,
            attributes={"dn": f"uid={ldap_id},dc=x"},
            connector_id=connector.id,
        )
        key = f.make_key(session, org, owner=scim_user.user)
        people.append(Person(scim_user, ldap_id, email, key))
    session.flush()
    return World(session, connector, people)


def refusal(world: World, person: Person) -> dict[str, object]:
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.target_id == str(person.scim_user.user_id),
            AuditEvent.action == lifecycle.REACTIVATION_REFUSED,
        )
        .order_by(AuditEvent.occurred_at.desc())
        .limit(1)
    )
    event = world.session.scalars(query).one()
    return dict(event.after or {})


@pytest.mark.parametrize("first", ["ldap", "scim"])
def test_a_person_two_sources_disabled_comes_back_only_when_both_let_go(session, settings, first):
    """LDAP disables, then SCIM deactivates (or the other way round); LDAP enables again:
    SCIM still says inactive, so the person stays revoked with their key off, whichever
    source spoke first. Once SCIM says active too, the person and their key are back."""
    world = make_world(session, settings, gate=False)
    person = world.people[0]
    user = person.scim_user.user
    if first == "ldap":
        world.ldap(person, enabled=False)
        world.scim(person, active=False)
    else:
        world.scim(person, active=False)
        world.ldap(person, enabled=False)
    assert lifecycle.REVOCATION_JOINED in world.actions(person)

    world.ldap(person, enabled=True)
    session.refresh(person.key)
    assert user.status is UserStatus.REVOKED and person.key.revoked
    assert refusal(world, person)["still_revoked_by"] == ["scim"]
    assert refusal(world, person)["released"] == "ldap"
    assert scim_actions.scim_snapshot(person.scim_user)["active"] is False

    world.scim(person, active=True)
    session.refresh(person.key)
    assert user.status is UserStatus.ACTIVE and not person.key.revoked
    assert "user.reactivated" in world.actions(person)


def test_a_held_scim_deactivation_overtaken_by_ldap_still_holds_the_person(session, settings):
    """The gate holds SCIM's deactivation; LDAP then disables the person (the hold closes as
    superseded) and enables them again: SCIM's deactivation still stands, so they stay out
    until SCIM says active."""
    world = make_world(session, settings, gate=True)
    world.scim(world.people[0], active=False)  # admitted: the gate counts it
    person = world.people[1]
    user = person.scim_user.user
    world.scim(person, active=False)
    assert user.status is UserStatus.ACTIVE and person.scim_user.held_inactive

    world.ldap(person, enabled=False)
    (hold,) = session.scalars(select(MassChange).where(MassChange.user_id == user.id))
    assert hold.status is ChangeStatus.SUPERSEDED
    revoked = session.scalars(
        select(AuditEvent).where(
            AuditEvent.target_id == str(user.id), AuditEvent.action == "user.revoked"
        )
    ).one()
    assert revoked.after is not None and revoked.after["standing_sources"] == ["ldap", "scim"]

    world.ldap(person, enabled=True)
    assert user.status is UserStatus.REVOKED
    assert refusal(world, person)["still_revoked_by"] == ["scim"]

    world.scim(person, active=True)
    session.refresh(person.key)
    assert user.status is UserStatus.ACTIVE and not person.key.revoked


def test_an_admin_brings_back_a_person_every_source_still_holds(session, settings):
    world = make_world(session, settings, gate=False)
    person = world.people[0]
    world.ldap(person, enabled=False)
    world.scim(person, active=False)
    admin = Actor(Source.ADMIN, "admin")
    user = person.scim_user.user
    assert lifecycle.reactivate(session, user=user, actor=admin) is lifecycle.Outcome.APPLIED
    session.refresh(person.key)
    assert user.status is UserStatus.ACTIVE and not person.key.revoked


def test_an_admin_bringing_back_whom_the_gate_held_shows_them_active_to_scim(session, settings):
    """The gate holds SCIM's deactivation; an admin revokes the person (the hold closes as
    superseded), then reactivates them: SCIM shows them active, as they are. Before, SCIM
    went on showing active=false, the held deactivation's display, over an active person."""
    world = make_world(session, settings, gate=True)
    world.scim(world.people[0], active=False)  # admitted: the gate counts it
    person = world.people[1]
    user = person.scim_user.user
    world.scim(person, active=False)
    assert scim_actions.scim_snapshot(person.scim_user)["active"] is False

    lifecycle.revoke(session, user=user, actor=ADMIN, reason="left")
    (hold,) = session.scalars(select(MassChange).where(MassChange.user_id == user.id))
    assert hold.status is ChangeStatus.SUPERSEDED
    assert lifecycle.reactivate(session, user=user, actor=ADMIN) is lifecycle.Outcome.APPLIED
    session.flush()

    assert user.status is UserStatus.ACTIVE
    assert scim_actions.scim_snapshot(person.scim_user)["active"] is True
