"""Organisations with IdP event hooks configured, and helpers to send them deliveries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from connectors import signed_webhooks
from models.actions import event_hooks
from models.db import SessionFactory
from models.entities import Organisation
from tests.support import factories as f
from tests.support.state import change_checker

OKTA_SECRET = "okta-shared-secret-0123456789"


@dataclass
class Hooked:
    org: Organisation
    signing_secret: str

    @property
    def okta_url(self) -> str:
        return f"/hooks/okta/{self.org.slug}"

    @property
    def events_url(self) -> str:
        return f"/hooks/events/{self.org.slug}"


def configure(session: Any, settings: Any, org: Organisation) -> Hooked:
    event_hooks.set_okta_secret(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        secret=OKTA_SECRET,
    )
    added = event_hooks.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    return Hooked(org=org, signing_secret=added.secret)


# What a receiver writes; a Celery worker left running by an earlier test may still be
# writing tables of its own, so the proof that a refusal stored nothing looks at this.
RECEIVER_TABLES = ("received_deliveries",)


@pytest.fixture
def unchanged(sessions: SessionFactory) -> Callable[[], None]:
    """Call it once before a delivery and once after: no delivery may have been stored."""
    return change_checker(sessions, RECEIVER_TABLES)


@pytest.fixture
def hooked(session, settings) -> Hooked:
    hooked = configure(session, settings, f.make_org(session))
    session.commit()
    return hooked


def okta_headers(secret: str = OKTA_SECRET) -> dict[str, str]:
    return {"Authorization": secret, "Content-Type": "application/json"}


def signed(secret: str, payload: Any, msg_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed_webhooks.sign(secret, msg_id=msg_id or f"msg_{uuid.uuid4().hex}", body=body)
    return body, {**headers, "Content-Type": "application/json"}


def generic(event_type: str, *, user: dict[str, str], **fields: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "id": fields.pop("id", f"evt_{uuid.uuid4().hex[:12]}"),
        "type": event_type,
        "occurred_at": fields.pop("occurred_at", datetime.now(UTC).isoformat()),
        "user": user,
        **fields,
    }
