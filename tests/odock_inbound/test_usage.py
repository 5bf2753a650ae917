"""Pushed usage: stored once per record id; usage after a revocation is flagged at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models.actions import lifecycle, odock_usage, reviews
from models.entities import (
    AuditEvent,
    Organisation,
    OutboxMessage,
    ReviewFinding,
    UsageRecord,
    User,
)
from models.enums import Role, Severity
from tests.odock_inbound.conftest import key_body
from tests.support import factories as f


def record(**fields):
    return {
        "id": fields.pop("id", f"rec-{uuid.uuid4().hex}"),
        "occurred_at": fields.pop("occurred_at", datetime.now(UTC).isoformat()),
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 20,
        "cost": "0.0012",
        "requests": 1,
        **fields,
    }


def _revoke_the_owner(bridged, session) -> str:
    """Revoke the key owner (with an admin to alert); a moment 5 s after the revocation."""
    f.make_user(session, session.get_one(Organisation, bridged.org.id), role=Role.ORG_ADMIN)
    revocation = lifecycle.revoke(
        session, user=session.get_one(User, bridged.owner.id), actor=f.SETUP
    )
    session.commit()
    after = (revocation.revoked_at + timedelta(seconds=5)).isoformat()
    session.rollback()
    return after


def _usage_findings(session) -> list[ReviewFinding]:
    return list(
        session.scalars(select(ReviewFinding).where(ReviewFinding.kind == "usage_after_revocation"))
    )


def test_records_are_idempotent_by_id_and_one_audit_event_per_batch(bridged, session):
    batch = {"records": [record(user_id=str(bridged.owner.id)) for _ in range(3)]}

    first = bridged.usage(batch)
    again = bridged.usage({"records": [*batch["records"], record()]})

    assert first.get_json() == {"accepted": 3, "duplicates": 0}
    assert again.get_json() == {"accepted": 1, "duplicates": 3}
    assert len(session.scalars(select(UsageRecord)).all()) == 4
    audits = session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "odock.usage.ingested")
    ).all()
    assert sorted(a["accepted"] for a in audits) == [1, 3]  # rows come back in no set order


def test_a_per_minute_aggregate_keeps_its_request_count(bridged, session):
    minute = datetime(2026, 12, 4, 10, 0, tzinfo=UTC).isoformat()
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner))
    response = bridged.usage(
        {"records": [record(id="agg-1", occurred_at=minute, api_key_id=str(key_id), requests=42)]}
    )
    assert response.status_code == 200
    stored = session.scalars(select(UsageRecord)).one()
    assert (stored.requests, stored.api_key_id, stored.external_id) == (42, key_id, "agg-1")


def test_usage_on_a_revoked_persons_key_opens_an_urgent_finding_at_once(bridged, session):
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner))
    after = _revoke_the_owner(bridged, session)

    response = bridged.usage({"records": [record(api_key_id=str(key_id), occurred_at=after)]})

    assert response.status_code == 200
    session.expire_all()
    (finding,) = _usage_findings(session)
    assert finding.severity is Severity.URGENT and finding.subject_id == key_id
    alerts = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "notifications.dispatch")
    ).all()
    assert "finding.urgent" in [alert["event"] for alert in alerts]


def test_usage_before_the_revocation_opens_nothing_urgent(bridged, session):
    before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    lifecycle.revoke(session, user=session.get_one(User, bridged.owner.id), actor=f.SETUP)
    session.commit()
    response = bridged.usage(
        {"records": [record(user_id=str(bridged.owner.id), occurred_at=before)]}
    )
    assert response.status_code == 200
    assert _usage_findings(session) == []


def test_a_later_record_in_the_batch_does_not_put_a_leavers_earlier_usage_on_their_review(
    bridged, session
):
    """Before, the batch's latest record stood for all of them: the leaver's review opened,
    and counted as refreshed, for usage from before their revocation."""
    revocation = lifecycle.revoke(
        session, user=session.get_one(User, bridged.owner.id), actor=f.SETUP
    )
    session.commit()
    batch = [
        record(
            user_id=str(bridged.owner.id), occurred_at=revocation.revoked_at - timedelta(days=1)
        ),
        record(
            user_id=str(bridged.other.id), occurred_at=revocation.revoked_at + timedelta(seconds=5)
        ),
    ]

    ingested = odock_usage.ingest_usage(
        session,
        organisation_id=bridged.org.id,
        records=odock_usage.parse_batch({"records": batch}).records,
        actor=f.SETUP,
    )

    assert (ingested.accepted, ingested.reviews_refreshed) == (2, 0)
    assert reviews.review_of(session, revocation.id) is None


def test_usage_on_an_org_key_the_revoked_person_created_is_flagged_at_once(bridged, session):
    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(created_by_user_id=str(bridged.owner.id)))
    after = _revoke_the_owner(bridged, session)

    response = bridged.usage({"records": [record(api_key_id=str(key_id), occurred_at=after)]})

    assert response.status_code == 200 and response.get_json()["accepted"] == 1
    session.expire_all()
    (finding,) = _usage_findings(session)
    assert finding.severity is Severity.URGENT and finding.subject_id == key_id
    assert finding.detail["key_still_active"] is True
