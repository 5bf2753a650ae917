"""Pushed upserts and deletes: idempotent, ordered by version, tombstoned, owners by email."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.entities import AuditEvent, Budget, OdockTombstone, Quota, VirtualApiKey
from models.enums import KeyType
from tests.odock_inbound.conftest import counts, key_body


def test_a_key_is_stored_under_odocks_id_and_a_repeat_changes_nothing(bridged, session):
    key_id = uuid.uuid4()
    first = bridged.put("keys", key_id, key_body(bridged.owner, version=17))
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["applied"] is True
    assert first.get_json()["id"] == str(key_id)
    before = counts(session)

    again = bridged.put("keys", key_id, key_body(bridged.owner, version=17))

    assert again.status_code == 200
    assert again.get_json()["applied"] is False
    assert counts(session) == before
    key = session.get_one(VirtualApiKey, key_id)
    assert (key.owner_user_id, key.key_type, key.version) == (bridged.owner.id, KeyType.USER, 17)
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(key_id)))
    assert list(actions) == ["odock.key.created"]


def test_an_older_version_is_acknowledged_and_ignored_a_newer_one_applied(bridged, session):
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner, version=5, name="five"))

    older = bridged.put("keys", key_id, key_body(bridged.owner, version=4, name="four"))
    newer = bridged.put("keys", key_id, key_body(bridged.other, version=6, name="six"))

    assert (older.status_code, older.get_json()["applied"]) == (200, False)
    assert (newer.status_code, newer.get_json()["applied"]) == (200, True)
    session.expire_all()
    key = session.get_one(VirtualApiKey, key_id)
    assert (key.name, key.owner_user_id, key.version) == ("six", bridged.other.id, 6)
    update = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "odock.key.updated")
    ).one()
    assert update.before["owner_user_id"] == str(bridged.owner.id)
    assert update.after["owner_user_id"] == str(bridged.other.id)


def test_a_delete_leaves_a_tombstone_that_an_older_upsert_does_not_pass(bridged, session):
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner, version=3))

    assert bridged.delete("keys", key_id, 5).status_code == 204
    assert bridged.delete("keys", key_id, 5).status_code == 204  # idempotent
    late = bridged.put("keys", key_id, key_body(bridged.owner, version=4))

    assert late.status_code == 200 and late.get_json()["applied"] is False
    session.expire_all()
    assert session.get(VirtualApiKey, key_id) is None
    tombstone = session.scalars(select(OdockTombstone)).one()
    assert (tombstone.object_id, tombstone.version) == (key_id, 5)
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "odock.key.deleted"))
    session.rollback()

    recreated = bridged.put("keys", key_id, key_body(bridged.owner, version=6))
    assert recreated.get_json()["applied"] is True


def test_deleting_an_unknown_object_is_acknowledged_and_buries_it(bridged, session):
    key_id = uuid.uuid4()
    assert bridged.delete("keys", key_id, 9).status_code == 204
    assert bridged.put("keys", key_id, key_body(bridged.owner, version=8)).get_json() == {
        "id": str(key_id),
        "applied": False,
    }
    assert session.get(VirtualApiKey, key_id) is None


def test_an_older_delete_does_not_remove_a_newer_object(bridged, session):
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner, version=10))
    assert bridged.delete("keys", key_id, 10).status_code == 204
    session.expire_all()
    assert session.get(VirtualApiKey, key_id) is not None


def test_owners_by_email_and_an_unknown_email_is_refused_with_nothing_changed(bridged, session):
    key_id = uuid.uuid4()
    body = key_body(version=1, type="USER", owner_email=bridged.owner.email.upper())
    body.pop("owner_user_id")
    assert bridged.put("keys", key_id, body).status_code == 200
    session.expire_all()
    assert session.get_one(VirtualApiKey, key_id).owner_user_id == bridged.owner.id
    session.rollback()
    before = counts(session)

    unknown = bridged.put("keys", uuid.uuid4(), {**body, "owner_email": "nobody@example.com"})
    creator = bridged.put(
        "keys", key_id, {**body, "version": 2, "created_by_email": "ghost@example.com"}
    )

    for response in (unknown, creator):
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
        assert "nobody" in response.get_json()["detail"] or "ghost" in response.get_json()["detail"]
    assert counts(session) == before


def test_a_person_or_team_of_another_organisation_is_unknown_here(bridged, session, settings):
    from tests.odock_inbound.conftest import bridge

    elsewhere = bridge(session, settings, bridged.client)
    before = counts(session)
    foreign_owner = bridged.put("keys", uuid.uuid4(), key_body(elsewhere.owner))
    foreign_team = bridged.put(
        "keys",
        uuid.uuid4(),
        key_body(version=1, type="TEAM", owner_team_id=str(elsewhere.team.id)),
    )
    assert foreign_owner.status_code == 422
    assert foreign_team.status_code == 422
    assert counts(session) == before


def test_an_id_held_by_another_organisation_is_a_conflict(bridged, session, settings):
    from tests.odock_inbound.conftest import bridge

    elsewhere = bridge(session, settings, bridged.client)
    key_id = uuid.uuid4()
    elsewhere.put("keys", key_id, key_body(elsewhere.owner, version=1))

    taken = bridged.put("keys", key_id, key_body(bridged.owner, version=2))
    removed = bridged.delete("keys", key_id, 3)

    assert (taken.status_code, removed.status_code) == (409, 409)
    session.expire_all()
    assert session.get_one(VirtualApiKey, key_id).organisation_id == elsewhere.org.id


def test_budgets_and_quotas_by_id_with_versions(bridged, session):
    budget_id, quota_id = uuid.uuid4(), uuid.uuid4()
    budget = {
        "owner_type": "USER",
        "owner_email": bridged.owner.email,
        "name": "monthly",
        "amount": "100.00",
        "currency": "USD",
        "window": "monthly",
        "version": 3,
    }
    quota = {
        "owner_type": "TEAM",
        "owner_id": str(bridged.team.id),
        "name": "daily",
        "metric": "tokens",
        "limit": 5_000_000_000,
        "window": "daily",
        "version": 3,
    }
    assert bridged.put("budgets", budget_id, budget).status_code == 200
    assert bridged.put("quotas", quota_id, quota).status_code == 200
    assert (
        bridged.put("budgets", budget_id, {**budget, "amount": "1", "version": 2}).get_json()[
            "applied"
        ]
        is False
    )
    assert bridged.put("quotas", quota_id, {**quota, "limit": 7, "version": 4}).get_json()[
        "applied"
    ]
    session.expire_all()
    stored_budget = session.get_one(Budget, budget_id)
    assert (stored_budget.owner_id, str(stored_budget.amount)) == (bridged.owner.id, "100.0000")
    assert session.get_one(Quota, quota_id).limit == 7
    session.rollback()

    assert bridged.delete("budgets", budget_id, 4).status_code == 204
    assert bridged.delete("quotas", quota_id, 5).status_code == 204
    session.expire_all()
    assert session.get(Budget, budget_id) is None and session.get(Quota, quota_id) is None


def test_the_openapi_document_is_served_and_valid(client):
    from openapi_spec_validator import validate

    response = client.get("/odock/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert {"/keys/{id}", "/budgets/{id}", "/quotas/{id}", "/usage", "/events"} <= set(
        document["paths"]
    )


def test_an_upserts_answer_is_what_the_document_says_for_each_kind(bridged, client):
    from tests.support.odock.contract import violations

    document = client.get("/odock/v1/openapi.json").get_json()
    budget = {"owner_type": "ORG", "name": "org", "amount": 10, "version": 1}
    quota = {"owner_type": "ORG", "name": "org", "limit": 7, "version": 1}
    for collection, body in (
        ("keys", key_body(bridged.owner)),
        ("budgets", budget),
        ("quotas", quota),
    ):
        applied = bridged.put(collection, uuid.uuid4(), body)
        buried = uuid.uuid4()
        assert bridged.delete(collection, buried, 5).status_code == 204
        ignored = bridged.put(collection, buried, body)
        schema = document["paths"][f"/{collection}/{{id}}"]["put"]["responses"]["200"]
        schema = schema["content"]["application/json"]["schema"]
        for answer in (applied, ignored):
            assert answer.status_code == 200, answer.get_json()
            assert violations(schema, answer.get_json()) == [], (collection, answer.get_json())


def test_an_id_that_is_not_a_uuid_is_a_documented_404(bridged, client):
    document = client.get("/odock/v1/openapi.json").get_json()
    for collection in ("keys", "budgets", "quotas"):
        put = bridged.put(collection, "not-a-uuid", key_body(bridged.owner))
        delete = bridged.delete(collection, "not-a-uuid", 1)

        assert (put.status_code, delete.status_code) == (404, 404)
        assert put.content_type == "application/problem+json"
        operations = document["paths"][f"/{collection}/{{id}}"]
        assert "404" in operations["put"]["responses"]
        assert "404" in operations["delete"]["responses"]
