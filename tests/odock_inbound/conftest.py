"""An organisation bridged to Odock: a token of scope `odock`, an event signing secret, people
and a team its objects can name, and helpers to push to /odock/v1."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors import signed_webhooks
from models.actions import odock_bridge, tokens
from models.entities import (
    AuditEvent,
    Budget,
    OdockTombstone,
    Organisation,
    Quota,
    Team,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import TokenScope
from tests.support import factories as f

STATE_TABLES = (VirtualApiKey, Budget, Quota, UsageRecord, OdockTombstone, AuditEvent)


@dataclass(frozen=True)
class Ref:
    """An object's id (and email) as plain values: reading them never touches the database
    (on SQLite a test's reading transaction would hold the write lock)."""

    id: uuid.UUID
    email: str = ""
    slug: str = ""


def ref(entity: Organisation | User | Team) -> Ref:
    return Ref(entity.id, getattr(entity, "email", ""), getattr(entity, "slug", ""))


@dataclass
class Bridged:
    org: Ref
    token: str
    signing_secret: str
    owner: Ref
    other: Ref
    team: Ref
    client: FlaskClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def put(self, collection: str, object_id: Any, body: Any, **headers: str) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return self.client.put(
            f"/odock/v1/{collection}/{object_id}",
            data=data,
            headers={**self.auth, "Content-Type": "application/json", **headers},
        )

    def delete(self, collection: str, object_id: Any, version: Any) -> Any:
        return self.client.delete(
            f"/odock/v1/{collection}/{object_id}?version={version}", headers=self.auth
        )

    def usage(self, body: Any) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return self.client.post(
            "/odock/v1/usage", data=data, headers={**self.auth, "Content-Type": "application/json"}
        )

    def event(self, payload: Any, msg_id: str | None = None, secret: str | None = None) -> Any:
        body = json.dumps(payload).encode()
        signed = signed_webhooks.sign(
            secret or self.signing_secret, msg_id=msg_id or f"msg_{uuid.uuid4().hex}", body=body
        )
        return self.client.post(
            "/odock/v1/events",
            data=body,
            headers={**self.auth, **signed, "Content-Type": "application/json"},
        )


def bridge(session: Session, settings: Any, client: FlaskClient) -> Bridged:
    org = f.make_org(session)
    owner = f.make_user(session, org, email=f"owner-{org.slug}@example.com")
    other = f.make_user(session, org, email=f"other-{org.slug}@example.com")
    team = f.make_team(session, org, "Platform")
    token = tokens.create_token(session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP)
    added = odock_bridge.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    session.commit()
    return Bridged(ref(org), token.secret, added.secret, ref(owner), ref(other), ref(team), client)


@pytest.fixture
def bridged(session, settings, client) -> Bridged:
    return bridge(session, settings, client)


@pytest.fixture
def bridged_settings(settings, httpserver):
    """Bridged, with a management plane on the test's loopback HTTP server (/mgmt)."""
    return settings.model_copy(
        update={
            "odock_mode": "bridged",
            "odock_management_url": httpserver.url_for("/mgmt"),
            "odock_management_token": "mgmt-token",
        }
    )


def key_body(owner: Ref | None = None, version: int = 1, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "USER" if owner else "ORGANISATION",
        "name": "ci bot",
        "masked_value": "sk-...a1b2",
        "owner_user_id": str(owner.id) if owner else None,
        "created_at": "2026-12-01T10:00:00Z",
        "revoked": False,
        "version": version,
    }
    return {**body, **fields}


def counts(session: Session) -> dict[str, int]:
    """How many rows each table the bridge writes holds (to show that nothing changed)."""
    session.expire_all()
    found = {
        table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
        for table in STATE_TABLES
    }
    session.rollback()  # SQLite: a reading transaction holds the write lock
    return found


from tests.cli.conftest import cli_env, run, run_json  # noqa: E402,F401 (shared fixtures)
