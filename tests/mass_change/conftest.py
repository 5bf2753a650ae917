"""An organisation with a SCIM token, IdP event hooks, an admin with an API token, and a
mass-change gate that trips after three destructive changes from one source."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import mass_change
from models.db import SessionFactory
from models.entities import AuditEvent, MassChange, Organisation, User
from models.enums import ChangeStatus, Role, UserStatus
from tests.cli.conftest import cli_env, run, run_json  # noqa: F401 (fixtures)
from tests.events.conftest import Hooked, configure
from tests.scim.conftest import (
    ScimClient,
    live_server,  # noqa: F401 (fixture)
)
from tests.scim.payloads import okta_create_user
from tests.support import factories as f

THRESHOLD = 3


@dataclass
class Gated:
    org: Organisation
    hooked: Hooked
    admin_id: uuid.UUID
    admin_email: str
    admin_headers: dict[str, str]
    scim_ids: dict[str, str] = field(default_factory=dict)  # email -> SCIM id

    def scim_users(self, scim: ScimClient, *emails: str) -> list[str]:
        """Provision these people through SCIM; their SCIM ids, in order."""
        for n, email in enumerate(emails):
            response = scim.post("/Users", okta_create_user(email, external_id=f"00u{email}{n}"))
            assert response.status_code == 201, response.json
            self.scim_ids[email] = response.json["id"]
        return [self.scim_ids[email] for email in emails]


@pytest.fixture
def gated(session: Session, settings: Any) -> Gated:
    org = f.make_org(session, "Gated")
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email="admin@gated.test")
    token = f.admin_token(session, org, admin)
    mass_change.set_thresholds(
        session, organisation=org, actor=f.SETUP, threshold_count=THRESHOLD, window_minutes=10
    )
    hooked = configure(session, settings, org)
    session.commit()
    return Gated(org, hooked, admin.id, admin.email, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def scim(client: Any, session: Session, gated: Gated) -> ScimClient:
    secret = f.scim_token(session, gated.org)
    session.commit()
    return ScimClient(client, secret)


def statuses(sessions: SessionFactory, emails: list[str]) -> list[UserStatus]:
    with sessions() as fresh:
        by_email = {u.email: u.status for u in fresh.scalars(select(User))}
    return [by_email[email] for email in emails]


def changes(sessions: SessionFactory, status: ChangeStatus) -> list[MassChange]:
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(MassChange)
                .where(MassChange.status == status)
                .order_by(MassChange.created_at)
            )
        )


def audit_actions(sessions: SessionFactory, prefix: str = "mass_change.") -> list[str]:
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.startswith(prefix))
                .order_by(AuditEvent.occurred_at, AuditEvent.id)
            )
        )


def user_id(sessions: SessionFactory, email: str) -> uuid.UUID:
    with sessions() as fresh:
        return fresh.scalars(select(User.id).where(User.email == email)).one()
