"""The recertification API: who may do what, and bad input answered with problem JSON."""

import pytest
from sqlalchemy import select

from models.entities import AuditEvent, RecertificationCampaign
from tests.support import factories as f


@pytest.fixture
def tokens(session, keys):
    made = {
        "admin": f.admin_token(session, keys.org, keys.admin),
        "owner": f.admin_token(session, keys.org, keys.owner),
    }
    session.commit()
    return {name: {"Authorization": f"Bearer {token}"} for name, token in made.items()}


@pytest.mark.parametrize(
    "body",
    [
        {"every_days": 0},
        {"every_days": "ninety"},
        {"on_deadline": "delete"},
        {"anchor_at": "yesterday"},
        {"anchor_at": "9999-12-31T23:59:59-12:00"},
        {"anchor_at": "0001-01-01T00:00:00+14:00"},
        {"spend_days": None, "unused_days": None, "moved_people": False},
        {"colour": "blue"},
        [],
    ],
)
def test_bad_policy_is_a_400_and_changes_nothing(client, tokens, unchanged, body):
    unchanged()
    response = client.put("/api/v1/recertification/policy", json=body, headers=tokens["admin"])
    assert response.status_code == 400, response.json
    assert response.content_type == "application/problem+json" and response.json["detail"]
    unchanged()


def test_only_admins_configure_and_open(client, session, tokens):
    owner = tokens["owner"]
    assert client.get("/api/v1/recertification/policy", headers=owner).status_code == 403
    assert client.post("/api/v1/recertification/campaigns", headers=owner).status_code == 403
    assert session.scalars(select(RecertificationCampaign)).all() == []
    session.rollback()  # SQLite: let the app take the write lock

    changed = client.put(
        "/api/v1/recertification/policy", json={"inactive_days": 30}, headers=tokens["admin"]
    )
    assert changed.status_code == 200 and changed.json["inactive_days"] == 30
    opened = client.post("/api/v1/recertification/campaigns", headers=tokens["admin"])
    assert opened.status_code == 201 and opened.json["findings"] == {"open": 4}
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"recertification.policy_changed", "recertification.opened"} <= actions


def test_unknown_ids_and_bad_decisions(client, tokens):
    admin = tokens["admin"]
    missing = "/api/v1/recertification/findings/00000000-0000-0000-0000-000000000000/decide"
    assert (
        client.post(missing, json={"decision": "keep", "reason": "x"}, headers=admin).status_code
        == 404
    )
    opened = client.post("/api/v1/recertification/campaigns", headers=admin).json
    shown = client.get(f"/api/v1/recertification/campaigns/{opened['id']}", headers=admin).json
    decide = f"/api/v1/recertification/findings/{shown['items'][0]['id']}/decide"
    for body in ({"decision": "ignore"}, {"decision": "keep", "reason": 5}, {}):
        assert client.post(decide, json=body, headers=admin).status_code == 400
    restore = f"/api/v1/recertification/findings/{shown['items'][0]['id']}/restore"
    assert client.post(restore, headers=admin).status_code == 409  # nothing was revoked
    assert (
        client.get(
            "/api/v1/recertification/campaigns/00000000-0000-0000-0000-000000000000", headers=admin
        ).status_code
        == 404
    )
