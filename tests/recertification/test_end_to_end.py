"""A campaign end to end: a real worker opens it on schedule, owners answer through the API,
the deadline revokes the rest at a real loopback gateway, and an admin restores one."""

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from models.base import utcnow
from models.entities import (
    RecertificationCampaign,
    ReviewFinding,
    RevocationReview,
    VirtualApiKey,
)
from models.enums import FindingState, ReviewStatus
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from worker.celery_app import celery_app


def test_campaign_opens_once_owners_confirm_the_deadline_revokes_an_admin_restores(
    session, sessions, client, worker, gateway, mailbox, keys
):
    admin = {"Authorization": f"Bearer {f.admin_token(session, keys.org, keys.admin)}"}
    owner = {"Authorization": f"Bearer {f.admin_token(session, keys.org, keys.owner)}"}
    mover = {"Authorization": f"Bearer {f.admin_token(session, keys.org, keys.mover)}"}
    session.commit()
    anchor = (utcnow() - timedelta(days=1)).isoformat()
    policy = client.put(
        "/api/v1/recertification/policy",
        json={"enabled": True, "every_days": 90, "anchor_at": anchor, "deadline_days": 14},
        headers=admin,
    )
    assert policy.status_code == 200, policy.json

    # the beat fires twice (two workers, or a beat restarted): one campaign for the slot
    for _ in range(3):
        celery_app.send_task("recertification.open_due")

    def opened():
        with sessions() as fresh:
            return fresh.scalars(select(RecertificationCampaign)).all()

    (campaign,) = wait_until(opened, what="the campaign opened by the worker", timeout=90)
    assert campaign.slot == "schedule:0"
    shown = client.get(f"/api/v1/recertification/campaigns/{campaign.id}", headers=admin).json
    by_key = {item["subject_id"]: item for item in shown["items"]}
    assert set(by_key) == {str(k) for k in keys.in_scope()}
    wait_relaying(lambda: mailbox.to(keys.owner.email), what="the owner is told", timeout=90)

    # the owner sees only their own findings, keeps one with a reason, and cannot skip it
    mine = client.get(f"/api/v1/recertification/campaigns/{campaign.id}", headers=owner).json
    assert {i["subject_id"] for i in mine["items"]} == {
        str(keys.spend.id),
        str(keys.spend_too.id),
        str(keys.unused.id),
    }
    spend = by_key[str(keys.spend.id)]["id"]
    decide = f"/api/v1/recertification/findings/{spend}/decide"
    no_reason = client.post(decide, json={"decision": "keep"}, headers=owner)
    assert no_reason.status_code == 400 and no_reason.json["detail"]
    foreign = client.post(decide, json={"decision": "keep", "reason": "x"}, headers=mover)
    assert foreign.status_code == 404
    kept = client.post(
        decide, json={"decision": "keep", "reason": "nightly billing"}, headers=owner
    )
    assert kept.status_code == 200 and kept.json["state"] == "resolved"
    again = client.post(decide, json={"decision": "keep", "reason": "twice"}, headers=owner)
    assert again.status_code == 409

    # the deadline passes: the worker revokes the three unconfirmed keys at the gateway
    with sessions() as fresh:
        fresh.execute(
            update(RecertificationCampaign)
            .where(RecertificationCampaign.id == campaign.id)
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )
        fresh.commit()
    celery_app.send_task("recertification.enforce_due")
    unconfirmed = {str(keys.spend_too.id), str(keys.unused.id), str(keys.moved.id)}
    wait_relaying(
        lambda: set().union(*gateway.keys_for(unconfirmed) or [set()]) >= unconfirmed,
        what="the gateway forgets the unconfirmed keys",
        timeout=90,
    )

    def settled():
        with sessions() as fresh:
            review = fresh.get_one(RevocationReview, campaign.review_id)
            findings = fresh.scalars(
                select(ReviewFinding).where(ReviewFinding.review_id == review.id)
            ).all()
            done = review.status is ReviewStatus.RESOLVED
            return done and {str(x.subject_id): x for x in findings}

    findings = wait_relaying(
        settled, what="the gateway's acknowledgement resolves the campaign", timeout=90
    )
    for key_id in unconfirmed:
        assert findings[key_id].action == "revoked"
        assert findings[key_id].invalidation_status == "acknowledged"
    assert findings[str(keys.spend.id)].action == "kept"
    with sessions() as fresh:
        assert not fresh.get_one(VirtualApiKey, keys.spend.id).revoked
        assert all(fresh.get_one(VirtualApiKey, uuid.UUID(k)).revoked for k in unconfirmed)

    # an admin restores one key; the owner cannot
    moved = findings[str(keys.moved.id)].id
    restore = f"/api/v1/recertification/findings/{moved}/restore"
    assert client.post(restore, json={"reason": "x"}, headers=owner).status_code == 403
    restored = client.post(restore, json={"reason": "still needed by CI"}, headers=admin)
    assert restored.status_code == 200 and restored.json["action"] == "restored"
    with sessions() as fresh:
        assert not fresh.get_one(VirtualApiKey, keys.moved.id).revoked
    wait_relaying(
        lambda: len(gateway.keys_for({str(keys.moved.id)})) >= 2,
        what="the gateway is told of the restore",
        timeout=90,
    )
    listed = client.get("/api/v1/recertification/campaigns", headers=admin).json
    assert [c["id"] for c in listed["items"]] == [str(campaign.id)]
    assert listed["items"][0]["status"] == "resolved"
    assert FindingState.RESOLVED.value in listed["items"][0]["findings"]
