"""One lifecycle policy for every source: who may bring a revoked person back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models.actions import lifecycle
from models.actions.lifecycle import Outcome
from models.actor import Actor
from models.entities import AuditEvent
from models.enums import Role, Source, UserStatus
from tests.events import okta_payloads as okta
from tests.events.test_apply import T0, okta_event, okta_user, outcomes, process
from tests.support import factories as f

OKTA = Actor(Source.OKTA, "okta event hook")
SCIM = Actor(Source.SCIM, "scim")


def refusals(session) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == lifecycle.REACTIVATION_REFUSED)
    return list(session.scalars(query))


def test_okta_activate_after_an_admin_revoke_leaves_the_person_revoked(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    key = f.make_key(session, org, owner=user)
    lifecycle.revoke(session, user=user, actor=f.SETUP, reason="left the company")

    delivery = process(session, org, okta.delivery(okta_event("user.lifecycle.activate")))

    assert outcomes(delivery) == ["refused"]
    session.refresh(user)
    session.refresh(key)
    assert user.status is UserStatus.REVOKED and key.revoked
    [refusal] = refusals(session)
    assert refusal.source is Source.OKTA and refusal.target_id == str(user.id)
    assert refusal.after["revoked_by"] == "admin" and refusal.after["requested_by"] == "okta"


def test_okta_brings_back_whom_okta_revoked_with_exactly_the_keys_it_disabled(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    key = f.make_key(session, org, owner=user)
    process(session, org, okta.delivery(okta_event("user.lifecycle.deactivate")))
    later = T0 + timedelta(minutes=1)
    delivery = process(
        session, org, okta.delivery(okta_event("user.lifecycle.activate", published=later))
    )
    assert outcomes(delivery) == ["applied"]
    session.refresh(key)
    assert user.status is UserStatus.ACTIVE and not key.revoked
    assert refusals(session) == []


@pytest.mark.parametrize(
    ("revoked_by", "source", "allowed"),
    [
        (Source.ADMIN, Source.ADMIN, True),
        (Source.SCIM, Source.ADMIN, True),
        (None, Source.ADMIN, True),
        (Source.SCIM, Source.SCIM, True),
        (Source.LDAP, Source.LDAP, True),
        (Source.ADMIN, Source.SCIM, False),
        (Source.ADMIN, Source.OKTA, False),
        (Source.SCIM, Source.OKTA, False),
        (Source.OKTA, Source.LDAP, False),
        (None, Source.SCIM, False),
    ],
)
def test_only_the_revoking_source_or_an_admin_may_reactivate(revoked_by, source, allowed):
    assert lifecycle.may_reactivate(revoked_by, source) is allowed


def test_a_refused_reactivation_changes_nothing_and_is_audited(session):
    org = f.make_org(session)
    user = f.make_user(session, org)
    lifecycle.revoke(session, user=user, actor=f.SETUP)
    assert lifecycle.set_active(session, user=user, active=True, actor=SCIM) is Outcome.REFUSED
    assert user.status is UserStatus.REVOKED and len(refusals(session)) == 1
    assert lifecycle.set_active(session, user=user, active=False, actor=SCIM) is Outcome.UNCHANGED
    assert lifecycle.reactivate(session, user=user, actor=f.SETUP) is Outcome.APPLIED
    assert user.status is UserStatus.ACTIVE


def test_roles_rank_from_user_to_super_admin():
    ranked = sorted(Role, key=lambda role: role.rank)
    assert ranked == [Role.USER, Role.MANAGER, Role.ORG_ADMIN, Role.SUPER_ADMIN]
