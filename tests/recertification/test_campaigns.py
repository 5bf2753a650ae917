"""Campaigns as domain operations: scope, idempotent opening, decisions, the deadline."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.actions import recertification, reviews
from models.base import utcnow
from models.entities import (
    AuditEvent,
    RecertificationCampaign,
    RecertificationPolicy,
    ReviewFinding,
    RevocationReview,
    VirtualApiKey,
)
from models.enums import FindingState, RecertDecision, ReviewStatus
from models.errors import InvalidInput, InvalidTransition
from tests.recertification.conftest import configure
from tests.support import factories as f


def _open(session, keys, **kw):
    opened = recertification.open_campaign(
        session, organisation_id=keys.org.id, actor=f.SETUP, **kw
    )
    session.flush()
    return opened


def _findings(session, campaign) -> dict:
    rows = session.scalars(
        select(ReviewFinding).where(ReviewFinding.review_id == campaign.review_id)
    ).all()
    return {row.subject_id: row for row in rows}


def test_keys_in_scope_become_findings_for_their_owners(session, keys):
    campaign = _open(session, keys).campaign

    found = _findings(session, campaign)
    assert set(found) == keys.in_scope()
    assert found[keys.spend.id].detail["in_scope"] == ["spend"]
    assert found[keys.unused.id].detail["in_scope"] == ["unused"]
    assert found[keys.moved.id].detail["in_scope"] == ["moved"]
    assert found[keys.moved.id].owner_user_id == keys.mover.id
    assert found[keys.moved.id].team_id == keys.team.id
    assert all(f.state is FindingState.OPEN and f.next_escalation_at for f in found.values())
    report = campaign.report
    assert report["in_scope"] == {"keys": 4, "spend": 2, "unused": 1, "moved": 1, "carried": 0}
    assert [k["id"] for k in report["unused_keys"]["items"]] == [str(keys.unused.id)]
    assert [p["email"] for p in report["inactive_people"]["items"]] == [keys.idle.email]
    opened = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "recertification.opened")
    ).one()
    assert opened.after["in_scope"]["keys"] == 4


def test_opening_a_slot_twice_opens_one_campaign_and_the_next_takes_over_open_questions(
    session, keys
):
    first = _open(session, keys, slot="schedule:3")
    again = _open(session, keys, slot="schedule:3")
    assert first.created and not again.created and again.campaign.id == first.campaign.id

    later = _open(session, keys, slot="schedule:4").campaign  # one open question per key
    assert set(_findings(session, later)) == keys.in_scope()
    session.expire_all()
    assert {f.action for f in _findings(session, first.campaign).values()} == {"superseded"}
    count = session.scalar(select(func.count()).select_from(RecertificationCampaign))
    assert count == 2


def test_open_due_follows_the_schedule(session, keys):
    now = utcnow()
    configure(session, keys.org, enabled=True, every_days=90, anchor_at=now - timedelta(days=95))
    opened = recertification.open_due(session, actor=f.SETUP, now=now)
    assert [o.campaign.slot for o in opened] == ["schedule:1"]
    assert recertification.open_due(session, actor=f.SETUP, now=now + timedelta(hours=1)) == []


def test_decisions_keep_rotate_revoke_and_bad_input_changes_nothing(session, keys):
    campaign = _open(session, keys).campaign
    found = _findings(session, campaign)

    with pytest.raises(InvalidInput):
        recertification.decide(
            session,
            finding=found[keys.spend.id],
            decision=RecertDecision.KEEP,
            reason="  ",
            actor=f.SETUP,
        )
    assert found[keys.spend.id].state is FindingState.OPEN

    kept = recertification.decide(
        session,
        finding=found[keys.spend.id],
        decision=RecertDecision.KEEP,
        reason="billing job",
        actor=f.SETUP,
    )
    assert kept.state is FindingState.RESOLVED and kept.action == "kept"
    assert kept.resolution == "keep: billing job"
    with pytest.raises(InvalidTransition):
        recertification.decide(
            session, finding=kept, decision=RecertDecision.REVOKE, reason="", actor=f.SETUP
        )

    rotated = recertification.decide(
        session,
        finding=found[keys.spend_too.id],
        decision=RecertDecision.ROTATE,
        reason="",
        actor=f.SETUP,
    )
    assert rotated.state is FindingState.RESOLVED and rotated.action == "rotation_requested"

    revoked = recertification.decide(
        session,
        finding=found[keys.unused.id],
        decision=RecertDecision.REVOKE,
        reason="",
        actor=f.SETUP,
    )
    session.flush()
    assert session.get_one(VirtualApiKey, keys.unused.id).revoked
    assert revoked.state is FindingState.OPEN and revoked.invalidation_status == "pending"
    reviews.record_invalidation(session, key_ids=[keys.unused.id], reason="test")
    assert revoked.state is FindingState.RESOLVED


def test_the_deadline_revokes_what_nobody_confirmed_and_an_admin_restores_it(session, keys):
    campaign = _open(session, keys).campaign
    found = _findings(session, campaign)
    recertification.decide(
        session,
        finding=found[keys.spend.id],
        decision=RecertDecision.KEEP,
        reason="needed",
        actor=f.SETUP,
    )
    assert recertification.enforce_due(session, now=campaign.deadline_at - timedelta(1)) == []

    assert recertification.enforce_due(session, now=campaign.deadline_at) == [campaign.id]
    session.flush()
    unconfirmed = {keys.spend_too.id, keys.unused.id, keys.moved.id}
    for key_id in unconfirmed:
        assert session.get_one(VirtualApiKey, key_id).revoked
    assert not session.get_one(VirtualApiKey, keys.spend.id).revoked
    assert campaign.report["deadline"] == {"policy": "revoke", "unconfirmed": 3, "revoked": 3}
    assert recertification.enforce_due(session, now=campaign.deadline_at) == []

    reviews.record_invalidation(session, key_ids=sorted(unconfirmed), reason="test")
    review = session.get_one(RevocationReview, campaign.review_id)
    assert review.status is ReviewStatus.RESOLVED

    recertification.restore(session, finding=found[keys.moved.id], actor=f.SETUP, reason="oops")
    session.flush()
    assert not session.get_one(VirtualApiKey, keys.moved.id).revoked
    assert found[keys.moved.id].action == "restored"
    with pytest.raises(InvalidTransition):
        recertification.restore(session, finding=found[keys.spend.id], actor=f.SETUP, reason="")


@pytest.mark.parametrize(
    "changes",
    [
        {"every_days": 0},
        {"every_days": "90"},
        {"deadline_days": True},
        {"on_deadline": "delete"},
        {"spend_days": None, "unused_days": None, "moved_people": False},
        {"nonsense": 1},
    ],
)
def test_bad_policy_changes_nothing(session, keys, changes):
    before = recertification.policy_view(session.get_one(RecertificationPolicy, keys.org.id))
    with pytest.raises(InvalidInput):
        recertification.configure(
            session, organisation_id=keys.org.id, actor=f.SETUP, changes=changes
        )
    session.rollback()
    assert (
        recertification.policy_view(session.get_one(RecertificationPolicy, keys.org.id)) == before
    )
