"""Signed change events: stored once per webhook-id, applied in order per object by the drain."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.entities import AuditEvent, ReceivedDelivery, UsageRecord, VirtualApiKey
from tests.odock_inbound.conftest import counts, key_body
from tests.support.odock.contract import violations
from tests.support.wait import wait_until


def upserted(key_id, body):
    return {"type": "key.upserted", "id": str(key_id), "data": body, "version": body["version"]}


def processed(sessions, delivery_id):
    with sessions() as fresh:
        delivery = fresh.scalar(
            select(ReceivedDelivery).where(ReceivedDelivery.delivery_id == delivery_id)
        )
        return delivery if delivery is not None and delivery.status != "received" else None


def test_an_event_is_stored_once_and_applied_by_the_worker(bridged, sessions, worker):
    key_id = uuid.uuid4()
    event = upserted(key_id, key_body(bridged.owner, version=3))

    first = bridged.event(event, msg_id="msg_one")
    again = bridged.event(event, msg_id="msg_one")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["status"] == "duplicate"
    answers = bridged.client.get("/odock/v1/openapi.json").get_json()["paths"]["/events"]
    for answer in (first, again):  # both as the document says, the repeat's 200 too
        documented = answers["post"]["responses"].get(str(answer.status_code))
        assert documented is not None, answer.status_code
        schema = documented["content"]["application/json"]["schema"]
        assert violations(schema, answer.get_json()) == [], answer.get_json()
    delivery = wait_until(lambda: processed(sessions, "msg_one"), what="the drain")
    assert delivery.status == "processed" and delivery.applied_count == 1
    with sessions() as fresh:
        assert fresh.get_one(VirtualApiKey, key_id).version == 3
        assert len(fresh.scalars(select(ReceivedDelivery)).all()) == 1


def test_events_out_of_order_settle_on_the_newest_version(bridged, sessions, worker):
    key_id = uuid.uuid4()
    bridged.event(upserted(key_id, key_body(bridged.owner, version=2, name="two")), "m1")
    bridged.event({"type": "key.deleted", "id": str(key_id), "version": 5}, "m2")
    bridged.event(upserted(key_id, key_body(bridged.owner, version=4, name="four")), "m3")

    late = wait_until(lambda: processed(sessions, "m3"), what="the drain")

    assert late.status == "processed" and late.results[0]["outcome"] == "stale"
    with sessions() as fresh:
        assert fresh.get(VirtualApiKey, key_id) is None


def test_an_event_naming_an_unknown_owner_is_rejected_and_changes_nothing(
    bridged, session, sessions, worker
):
    body = key_body(version=1, type="USER", owner_email="nobody@example.com")
    body.pop("owner_user_id")
    before = counts(session)
    assert bridged.event(upserted(uuid.uuid4(), body), "m-unknown").status_code == 202

    delivery = wait_until(lambda: processed(sessions, "m-unknown"), what="the drain")

    assert delivery.status == "rejected" and "nobody@example.com" in delivery.outcome
    after = counts(session)
    assert after["virtual_api_keys"] == before["virtual_api_keys"]


def test_a_forged_or_unsigned_event_is_refused_and_not_stored(bridged, session):
    event = upserted(uuid.uuid4(), key_body(bridged.owner))
    forged = bridged.event(event, secret="whsec_" + "A" * 44)
    unsigned = bridged.client.post("/odock/v1/events", json=event, headers=bridged.auth)
    malformed = bridged.event({"type": "key.exploded", "id": "x", "version": 1})

    assert (forged.status_code, unsigned.status_code, malformed.status_code) == (401, 401, 400)
    for response in (forged, unsigned, malformed):
        assert response.mimetype == "application/problem+json"
    assert session.scalars(select(ReceivedDelivery)).all() == []


def usage_event(*records):
    return {"type": "usage.recorded", "data": {"records": list(records)}}


def test_a_usage_event_is_stored_once_per_record_and_flags_usage_after_revocation(
    bridged, session, sessions, worker
):
    from tests.odock_inbound.test_usage import _revoke_the_owner, _usage_findings, record

    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner))
    after = _revoke_the_owner(bridged, session)
    late = record(id="rec-late", api_key_id=str(key_id), occurred_at=after)

    first = bridged.event(usage_event(late, record(id="rec-2")), "usage-1")
    # a second delivery repeating one record (Odock re-sent it): stored once
    again = bridged.event(usage_event(late, record(id="rec-3")), "usage-2")

    assert (first.status_code, again.status_code) == (202, 202)
    one = wait_until(lambda: processed(sessions, "usage-1"), what="the drain")
    two = wait_until(lambda: processed(sessions, "usage-2"), what="the drain")
    assert one.status == two.status == "processed"
    assert (one.results[0]["accepted"], one.results[0]["duplicates"]) == (2, 0)
    assert (two.results[0]["accepted"], two.results[0]["duplicates"]) == (1, 1)
    session.expire_all()
    stored = session.scalars(select(UsageRecord.external_id)).all()
    assert sorted(stored) == ["rec-2", "rec-3", "rec-late"]
    (finding,) = _usage_findings(session)
    assert finding.subject_id == key_id  # the urgent case, as for pushed usage
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "odock.usage.ingested")
    ).all()
    assert len(actions) == 2


def test_a_malformed_usage_event_is_refused_with_a_clear_problem_and_not_stored(bridged, session):
    from tests.odock_inbound.test_usage import record

    cases = {
        "no data": {"type": "usage.recorded"},
        "no records": {"type": "usage.recorded", "data": {}},
        "records not a list": {"type": "usage.recorded", "data": {"records": "x"}},
        "a bad record": usage_event(record(cost="NaN")),
        "an object id": {**usage_event(record()), "id": str(uuid.uuid4())},
        "an object event without id": {"type": "key.deleted", "version": 3},
        "an object event without version": {"type": "key.deleted", "id": str(uuid.uuid4())},
    }
    for what, payload in cases.items():
        response = bridged.event(payload)
        assert response.status_code == 400, (what, response.get_json())
        assert response.mimetype == "application/problem+json", what
        assert response.get_json()["detail"], what
    assert session.scalars(select(ReceivedDelivery)).all() == []
