"""An identity provider deactivating or deleting the organisation's last active Organisation
Admin is never refused (a leaver is cut off at once), but it is audited
(`organisation.no_active_admin`) and announced through the organisation's notification hooks,
delivered by a real worker to a loopback HTTP server (models/actions/last_admin.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.actions import users as user_actions
from models.actor import Actor
from models.entities import AuditEvent, ScimUser, User
from models.enums import Role, UserStatus
from tests.scim.conftest import ops
from tests.scim.payloads import okta_create_user
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.siem import Receiver, siem_receiver

NO_ADMIN = "organisation.no_active_admin"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with siem_receiver() as running:
        yield running


def _alerts(receiver: Receiver) -> list[dict]:
    bodies = [json.loads(r.body) for r in receiver.accepted()]
    return [body for body in bodies if body.get("type") == NO_ADMIN]


def _scim_admin(scim, session, email: str) -> tuple[uuid.UUID, str]:
    """A person the IdP pushed, made an Organisation Admin by an admin: their user id and
    SCIM id (committed: on SQLite an open transaction holds the write lock)."""
    created = scim.post("/Users", okta_create_user(email))
    assert created.status_code == 201, created.json
    user = session.get_one(User, session.get_one(ScimUser, uuid.UUID(created.json["id"])).user_id)
    user_actions.edit_user(session, user=user, role=Role.ORG_ADMIN, actor=f.SETUP)
    session.commit()
    return user.id, created.json["id"]


def _hook(session, settings, org, receiver: Receiver) -> None:
    f.make_hook(
        session,
        org.id,
        receiver.url,
        secret_key=settings.secret_key,
        name="ops",
        events=["organisation.*"],
        actor=Actor.system("test"),
    )
    session.commit()


def _no_admin_events(sessions, org_id: uuid.UUID) -> list[AuditEvent]:
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(AuditEvent).where(
                    AuditEvent.organisation_id == org_id, AuditEvent.action == NO_ADMIN
                )
            )
        )


def test_deactivating_one_of_two_admins_records_nothing(scim, session, sessions, org) -> None:
    _, scim_id = _scim_admin(scim, session, "first@example.com")
    _scim_admin(scim, session, "second@example.com")
    response = scim.patch(
        f"/Users/{scim_id}", ops({"op": "replace", "path": "active", "value": False})
    )
    assert response.status_code == 200, response.json
    assert _no_admin_events(sessions, org.id) == []


@pytest.mark.parametrize("how", ["deactivate", "delete"])
def test_the_last_admin_is_cut_off_and_the_organisation_told(
    how, scim, session, sessions, settings, org, receiver, worker
) -> None:
    admin, scim_id = _scim_admin(scim, session, "last@example.com")
    _hook(session, settings, org, receiver)
    if how == "deactivate":
        body = ops({"op": "replace", "path": "active", "value": False})
        response = scim.patch(f"/Users/{scim_id}", body)
        assert response.status_code == 200, response.json
    else:
        response = scim.delete(f"/Users/{scim_id}")
        assert response.status_code == 204, response.get_data(as_text=True)

    with sessions() as fresh:
        assert fresh.get_one(User, admin).status is UserStatus.REVOKED
    (event,) = _no_admin_events(sessions, org.id)
    assert event.source == "scim" and event.target_type == "organisation"
    assert event.after["cause"] == "revoked" and event.after["user_id"] == str(admin)
    assert "users create" in event.after["recovery"]

    (alert,) = wait_relaying(lambda: _alerts(receiver), what="the no-admin alert")
    assert alert["data"]["user_id"] == str(admin)
    assert "last@example.com" in alert["data"]["message"]
