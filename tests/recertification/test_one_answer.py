"""One answer per finding: the first decision (or the deadline's revocation) wins, a decision
made on an earlier read of the finding sees it, and a revoke waiting for the gateway takes no
other answer."""

import pytest
from sqlalchemy import func, select

from models.actions import recertification, reviews
from models.entities import AuditEvent, ReviewFinding, VirtualApiKey
from models.enums import FindingState, RecertDecision
from models.errors import InvalidTransition
from tests.support import factories as f


@pytest.fixture
def campaign(session, keys):
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    session.commit()
    return opened.campaign


def _finding_of(session, campaign, key_id) -> ReviewFinding:
    return session.scalars(
        select(ReviewFinding).where(
            ReviewFinding.review_id == campaign.review_id, ReviewFinding.subject_id == key_id
        )
    ).one()


def _decide(session, finding, decision: RecertDecision, reason: str = "") -> ReviewFinding:
    return recertification.decide(
        session, finding=finding, decision=decision, reason=reason, actor=f.SETUP
    )


def _decisions(session) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "recertification.decided")
    )


def test_a_decision_made_on_a_stale_read_sees_the_first_answer(
    session, sessions, engine, keys, campaign
):
    """Two people answer one finding: the owner keeps the key, a manager who loaded the finding
    before that commits asks to revoke it. (SQLite serialises writers: there the manager's read
    waits for the owner's commit.)"""
    interleaved = engine.dialect.name == "postgresql"
    with sessions() as manager, sessions() as owner:
        stale = _finding_of(manager, campaign, keys.spend.id) if interleaved else None
        _decide(owner, _finding_of(owner, campaign, keys.spend.id), RecertDecision.KEEP, "billing")
        owner.commit()
        stale = stale or _finding_of(manager, campaign, keys.spend.id)
        with pytest.raises(InvalidTransition):
            _decide(manager, stale, RecertDecision.REVOKE)
        manager.rollback()
    session.expire_all()
    assert not session.get_one(VirtualApiKey, keys.spend.id).revoked
    kept = _finding_of(session, campaign, keys.spend.id)
    assert kept.state is FindingState.RESOLVED and kept.action == "kept"
    assert _decisions(session) == 1


def test_a_keep_read_before_the_deadline_revoked_the_key_is_refused(
    session, sessions, engine, keys, campaign
):
    interleaved = engine.dialect.name == "postgresql"
    with sessions() as owner, sessions() as beat:
        stale = _finding_of(owner, campaign, keys.unused.id) if interleaved else None
        assert recertification.enforce_due(beat, now=campaign.deadline_at) == [campaign.id]
        beat.commit()
        stale = stale or _finding_of(owner, campaign, keys.unused.id)
        with pytest.raises(InvalidTransition):
            _decide(owner, stale, RecertDecision.KEEP, "still needed")
        owner.rollback()
    session.expire_all()
    revoked = _finding_of(session, campaign, keys.unused.id)
    assert session.get_one(VirtualApiKey, keys.unused.id).revoked
    assert revoked.action == "revoked" and revoked.invalidation_status == "pending"
    assert _decisions(session) == 0


def test_a_revoke_waiting_for_the_gateway_takes_no_other_answer_nor_the_deadline(
    session, keys, campaign
):
    finding = _decide(session, _finding_of(session, campaign, keys.spend.id), RecertDecision.REVOKE)
    session.commit()
    for decision, reason in ((RecertDecision.KEEP, "needed"), (RecertDecision.REVOKE, "")):
        with pytest.raises(InvalidTransition, match="waiting for the gateway"):
            _decide(session, finding, decision, reason)
        session.rollback()

    assert recertification.enforce_due(session, now=campaign.deadline_at) == [campaign.id]
    session.commit()
    assert campaign.report["deadline"]["unconfirmed"] == 3  # the three nobody answered
    finding = _finding_of(session, campaign, keys.spend.id)
    assert finding.action == "revoked"  # not the deadline's "already_revoked"
    # Only the gateway's acknowledgement closes it: the run's Celery worker, started by an
    # earlier test, may have delivered the invalidation already.
    if finding.state is FindingState.OPEN:
        assert finding.resolution is None and finding.invalidation_status == "pending"
        reviews.record_invalidation(session, key_ids=[keys.spend.id], reason="test")
    assert finding.state is FindingState.RESOLVED
    assert finding.resolution == "revoked by policy; the gateway acknowledged"
    assert _decisions(session) == 1


@pytest.fixture
def admin_headers(session, keys):
    token = f.admin_token(session, keys.org, keys.admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_answers_409_in_problem_json_while_the_revocation_is_pending(
    client, session, keys, campaign, admin_headers
):
    finding_id, campaign_id = _finding_of(session, campaign, keys.moved.id).id, campaign.id
    session.rollback()  # SQLite: let the app take the write lock
    decide = f"/api/v1/recertification/findings/{finding_id}/decide"
    first = client.post(decide, json={"decision": "revoke"}, headers=admin_headers)
    assert first.status_code == 200 and first.json["invalidation_status"] == "pending"

    again = client.post(decide, json={"decision": "keep", "reason": "x"}, headers=admin_headers)
    assert again.status_code == 409
    assert again.content_type == "application/problem+json"
    assert "waiting for the gateway" in again.json["detail"]
    shown = client.get(
        f"/api/v1/recertification/campaigns/{campaign_id}", headers=admin_headers
    ).json
    (item,) = [i for i in shown["items"] if i["id"] == str(finding_id)]
    assert item["state"] == "open" and item["invalidation_status"] == "pending"
    assert item["action"] == "revoked"


@pytest.mark.parametrize("verb", ["resolve", "dismiss"])
def test_a_campaign_finding_is_not_answered_through_the_generic_review_api(
    client, session, keys, campaign, admin_headers, verb
):
    """The generic resolve/dismiss would skip the keep reason and the one-answer rule."""
    finding_id = _finding_of(session, campaign, keys.moved.id).id
    session.rollback()  # SQLite: let the app take the write lock
    answer = client.post(
        f"/api/v1/findings/{finding_id}/{verb}", json={"note": "fine"}, headers=admin_headers
    )
    assert answer.status_code == 409, answer.json
    assert answer.content_type == "application/problem+json"
    assert "answered in its campaign" in answer.json["detail"]
    assert session.get(ReviewFinding, finding_id).state is FindingState.OPEN
    with pytest.raises(InvalidTransition):
        reviews.resolve_finding(
            session, finding=session.get(ReviewFinding, finding_id), actor=f.SETUP
        )
    kept = _decide(session, session.get(ReviewFinding, finding_id), RecertDecision.KEEP, "in use")
    assert kept.state is FindingState.RESOLVED
