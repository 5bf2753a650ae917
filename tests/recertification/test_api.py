"""The recertification API: who may do what, and bad input answered with problem JSON."""

import pytest
from sqlalchemy import Engine, func, select

from models.entities import AuditEvent, RecertificationCampaign, RecertificationPolicy
from tests.recertification.conftest import build_keys
from tests.support import factories as f
from tests.support.sql_events import statements_sent

DEFAULTS = {
    "enabled": False,
    "every_days": 90,
    "deadline_days": 14,
    "spend_days": 90,
    "unused_days": 90,
    "moved_people": True,
    "inactive_days": 90,
    "on_deadline": "revoke",
}


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


def _policy_rows_and_events(session):
    session.expire_all()
    rows = session.scalar(select(func.count()).select_from(RecertificationPolicy))
    events = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.startswith("recertification."))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    session.rollback()  # SQLite: let the app take the write lock
    return rows, events


@pytest.mark.parametrize("first_write", ["configure", "open"])
def test_reading_a_fresh_policy_writes_nothing_the_first_writer_stores_it(
    client, session, first_write
):
    """GET answers the defaults without a statement that writes (it inserted them before,
    unaudited, and two readers raced); the first writer stores the row, audited."""
    keys = build_keys(session)
    admin = {"Authorization": f"Bearer {f.admin_token(session, keys.org, keys.admin)}"}
    session.commit()
    with statements_sent(Engine) as sent:
        for _ in range(2):
            shown = client.get("/api/v1/recertification/policy", headers=admin)
            assert shown.status_code == 200, shown.json
            assert {k: v for k, v in shown.json.items() if k != "anchor_at"} == DEFAULTS
    assert [s for s in sent if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE"))] == []
    assert _policy_rows_and_events(session) == (0, [])

    if first_write == "configure":
        written = client.put(
            "/api/v1/recertification/policy", json={"inactive_days": 30}, headers=admin
        )
        assert written.status_code == 200 and written.json["inactive_days"] == 30
        actions = ["recertification.policy_created", "recertification.policy_changed"]
    else:
        written = client.post("/api/v1/recertification/campaigns", headers=admin)
        assert written.status_code == 201, written.json
        actions = ["recertification.policy_created", "recertification.opened"]
    assert _policy_rows_and_events(session) == (1, actions)
    stored = client.get("/api/v1/recertification/policy", headers=admin).json
    assert stored["inactive_days"] == (30 if first_write == "configure" else 90)
    assert _policy_rows_and_events(session) == (1, actions)
