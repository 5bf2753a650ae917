"""Opening a revocation review: findings per policy, idempotent, notifications asked for."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from models.actions import lifecycle, reviews
from models.base import utcnow
from models.entities import AuditEvent, OutboxMessage, ReviewFinding, VirtualApiKey
from models.enums import FindingState, KeyPolicy, ReviewStatus, Severity
from models.errors import InvalidTransition, NotFound
from tests.reviews.conftest import (
    REVIEWER,
    build_leaver,
    dispatched,
    findings_by_kind,
    revoke_and_review,
)
from tests.support import factories as f


def test_review_lists_every_key_team_budget_and_quota_with_the_action_per_policy(session):
    world = build_leaver(session)

    review = revoke_and_review(session, world.person)

    kinds = findings_by_kind(review)
    user_keys = {fi.subject_id: fi for fi in kinds["user_key"]}
    assert set(user_keys) == {world.key_a.id, world.key_b.id}
    for finding in user_keys.values():
        assert finding.action == "revoked" and finding.action_taken
        # Revoked, but not done until the gateway has forgotten the key.
        assert finding.state is FindingState.OPEN and finding.resolved_by is None
        assert finding.invalidation_status == "pending"
        asked = finding.invalidation_requested_at
        assert asked is not None and abs(utcnow() - asked) < timedelta(minutes=5)
        # 90 s after the request itself: from "now", a loaded run added its own seconds.
        with time_machine.travel(asked + timedelta(seconds=90), tick=False):
            waited = reviews.finding_summary(finding)["invalidation_pending_seconds"]
        assert waited == 90  # the age counts from the revocation
    assert user_keys[world.key_a.id].team_id == world.team_a.id
    (team_key,) = kinds["team_key"]
    assert team_key.subject_id == world.team_key.id
    assert team_key.action == "hold_for_review" and not team_key.action_taken
    assert team_key.state is FindingState.OPEN
    assert session.get(VirtualApiKey, world.team_key.id).revoked is False
    (last_manager,) = kinds["last_manager"]
    assert last_manager.subject_id == world.team_b.id and last_manager.severity is Severity.HIGH
    assert [fi.action for fi in kinds["budget"] + kinds["quota"]] == ["transfer", "transfer"]
    assert "usage_after_revocation" not in kinds
    assert review.status is ReviewStatus.OPEN
    assert session.get(VirtualApiKey, world.other_key.id).revoked is False

    reviews.record_invalidation(session, key_ids=list(user_keys), reason="revoked")

    for finding in user_keys.values():
        assert finding.state is FindingState.RESOLVED and finding.resolved_by == "policy"
        assert finding.invalidation_status == "acknowledged"
        assert "invalidation_pending_seconds" not in reviews.finding_summary(finding)


def test_opening_twice_returns_the_same_review_and_adds_nothing(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    count = session.scalar(select(func.count(ReviewFinding.id)))
    messages = session.scalar(select(func.count(OutboxMessage.id)))

    again = reviews.open_revocation_review(
        session, revocation_id=review.revocation_id, actor=REVIEWER
    )

    assert again.id == review.id
    assert session.scalar(select(func.count(ReviewFinding.id))) == count
    assert session.scalar(select(func.count(OutboxMessage.id))) == messages


def test_team_key_policy_revoke_revokes_the_created_team_keys_with_the_revocation(session):
    """The key-scope policy decides once: the revocation itself disables the team keys the
    person created (in the same invalidation as their own keys), the review records it."""
    world = build_leaver(session)
    world.org.settings.team_key_policy = KeyPolicy.REVOKE
    session.flush()

    review = revoke_and_review(session, world.person)

    (finding,) = findings_by_kind(review)["team_key"]
    key = session.get(VirtualApiKey, world.team_key.id)
    assert key.revoked and key.revoked_by_revocation_id == review.revocation_id
    assert finding.action == "revoked" and finding.action_taken
    assert finding.invalidation_status == "pending"
    invalidations = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "gateway.invalidate_keys")
    ).all()
    mine = {str(world.key_a.id), str(world.key_b.id), str(world.team_key.id)}
    assert [(i["key_ids"], i["reason"]) for i in invalidations] == [(sorted(mine), "revoked")]


def test_hold_policy_proposes_revocation_and_keeps_user_keys_active(session):
    world = build_leaver(session)
    world.org.settings.user_key_policy = KeyPolicy.HOLD
    session.flush()

    review = revoke_and_review(session, world.person)

    for finding in findings_by_kind(review)["user_key"]:
        assert finding.action == "revoke" and not finding.action_taken
        assert finding.state is FindingState.OPEN and finding.severity is Severity.HIGH
    assert session.get(VirtualApiKey, world.key_a.id).revoked is False


def test_usage_after_the_revocation_is_an_urgent_finding_and_alerts(session):
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    f.make_usage(session, world.org, world.person, world.team_key, cost="2.5")
    before = f.make_usage(session, world.org, world.person, world.key_a)
    before.occurred_at = revocation.revoked_at - timedelta(minutes=5)
    session.flush()

    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)

    (urgent,) = findings_by_kind(review)["usage_after_revocation"]
    assert urgent.severity is Severity.URGENT and urgent.subject_id == world.team_key.id
    assert urgent.detail["requests"] == 1 and urgent.detail["cost"].startswith("2.5")
    assert urgent.action == "revoke_key" and urgent.detail["key_still_active"] is True
    events = [kwargs["event"] for kwargs in dispatched(session)]
    assert sorted(events) == ["finding.urgent", "review.opened"]


def test_review_opened_goes_to_the_owner_the_affected_managers_and_the_admins(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)

    (opened,) = dispatched(session)

    assert opened["event"] == "review.opened"
    assert set(opened["recipient_user_ids"]) == {
        str(world.person.id),
        str(world.manager_a.id),
        str(world.admin.id),
    }
    payload = opened["payload"]
    assert payload["review_id"] == str(review.id)
    assert payload["user"]["email"] == world.person.email
    assert len(payload["findings"]) == len(review.findings)


def test_resolving_the_last_open_finding_resolves_the_review_and_says_so(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    open_findings = [fi for fi in review.findings if fi.state is FindingState.OPEN]

    for finding in open_findings[:-1]:
        reviews.resolve_finding(session, finding=finding, actor=REVIEWER, note="handled")
    assert review.status is ReviewStatus.OPEN
    reviews.dismiss_finding(session, finding=open_findings[-1], actor=REVIEWER, note="fine")

    assert review.status is ReviewStatus.RESOLVED and review.resolved_by == str(REVIEWER)
    assert open_findings[-1].state is FindingState.DISMISSED
    with pytest.raises(InvalidTransition):
        reviews.resolve_finding(session, finding=open_findings[0], actor=REVIEWER)
    assert [e["event"] for e in dispatched(session)] == ["review.opened", "review.resolved"]
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "review_finding")
    ).all()
    assert audited.count("review.finding_resolved") == len(open_findings) - 1
    assert audited.count("review.finding_dismissed") == 1


def test_reassigning_moves_keys_budgets_quotas_and_teams_and_is_audited(session):
    world = build_leaver(session)
    heir = f.make_user(session, world.org, email="heir@example.com")
    review = revoke_and_review(session, world.person)
    kinds = findings_by_kind(review)
    reviews.record_invalidation(session, key_ids=[world.key_a.id, world.key_b.id], reason="revoked")

    reviews.reassign_finding(
        session, finding=kinds["team_key"][0], actor=REVIEWER, to_team=world.team_b
    )
    reviews.reassign_finding(session, finding=kinds["budget"][0], actor=REVIEWER, to_user=heir)
    reviews.reassign_finding(
        session, finding=kinds["quota"][0], actor=REVIEWER, to_team=world.team_a
    )
    reviews.reassign_finding(
        session, finding=kinds["last_manager"][0], actor=REVIEWER, to_user=heir
    )

    key = session.get(VirtualApiKey, world.team_key.id)
    assert key.owner_team_id == world.team_b.id
    from models.entities import Budget, Quota, TeamMembership

    assert session.scalars(select(Budget)).one().owner_id == heir.id
    assert session.scalars(select(Quota)).one().owner_id == world.team_a.id
    assert session.get(TeamMembership, (world.team_b.id, heir.id)).role.value == "MANAGER"
    assert all(fi.state is FindingState.RESOLVED for fi in review.findings)
    assert review.status is ReviewStatus.RESOLVED
    audited = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "review.reassigned")
    ).all()
    assert len(audited) == 4
    with pytest.raises(NotFound):
        other_org = f.make_org(session)
        stranger = f.make_user(session, other_org)
        reviews.reassign_finding(
            session, finding=kinds["budget"][0], actor=REVIEWER, to_user=stranger
        )


def test_a_revoked_user_cannot_inherit(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    gone = f.make_user(session, world.org)
    lifecycle.revoke(session, user=gone, actor=f.SETUP)
    from models.errors import InvalidInput

    with pytest.raises(InvalidInput):
        reviews.reassign_finding(
            session, finding=findings_by_kind(review)["budget"][0], actor=REVIEWER, to_user=gone
        )


def test_gateway_acknowledgement_is_recorded_on_the_findings_in_either_order(session):
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.flush()
    # the gateway answered for key A before the review opened, for key B after
    reviews.record_invalidation(session, key_ids=[world.key_a.id], reason="revoked")
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)
    by_key = {fi.subject_id: fi for fi in findings_by_kind(review)["user_key"]}
    assert by_key[world.key_a.id].invalidation_status == "acknowledged"
    assert by_key[world.key_a.id].invalidated_at is not None
    assert by_key[world.key_b.id].invalidation_status == "pending"

    reviews.record_invalidation(session, key_ids=[world.key_b.id], reason="revoked")
    session.expire_all()

    assert by_key[world.key_b.id].invalidation_status == "acknowledged"
    assert by_key[world.key_b.id].invalidated_at is not None


def test_acknowledging_stops_escalation_and_escalation_climbs_owner_managers_admins(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    interval = timedelta(minutes=world.org.settings.review_escalation_minutes)
    start = utcnow()

    def escalations():
        return [kwargs for kwargs in dispatched(session) if kwargs["event"] == "review.escalated"]

    assert reviews.escalate_due(session, actor=REVIEWER, now=start) == 0
    # revoked keys waiting on the gateway are open but have no one to remind
    open_count = sum(
        fi.state is FindingState.OPEN and not fi.action_taken for fi in review.findings
    )
    assert reviews.escalate_due(session, actor=REVIEWER, now=start + interval * 1.1) == open_count
    assert escalations()[-1]["recipient_user_ids"] == [str(world.person.id)]
    reviews.escalate_due(session, actor=REVIEWER, now=start + interval * 2.2)
    managers = {r for m in escalations()[1:] for r in m["recipient_user_ids"]}
    assert str(world.manager_a.id) in managers and str(world.person.id) not in managers
    reviews.escalate_due(session, actor=REVIEWER, now=start + interval * 3.3)
    assert escalations()[-1]["recipient_user_ids"] == [str(world.admin.id)]

    assert reviews.acknowledge_review(session, review=review, actor=REVIEWER) == sum(
        fi.state is FindingState.OPEN for fi in review.findings
    )
    assert reviews.escalate_due(session, actor=REVIEWER, now=start + interval * 10) == 0
    assert reviews.acknowledge_review(session, review=review, actor=REVIEWER) == 0


def test_a_review_whose_keys_wait_on_the_gateway_opens_pending_and_resolves_on_its_word(session):
    """Policy revoked everything, but the key works until the gateway forgets it: the review
    opens (and says so) with the finding pending, and resolves once the gateway acknowledges."""
    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)

    review = revoke_and_review(session, person)

    assert review.status is ReviewStatus.OPEN
    (opened,) = dispatched(session)
    assert opened["event"] == "review.opened" and opened["payload"]["status"] == "open"
    (summary,) = opened["payload"]["findings"]
    assert summary["state"] == "open" and summary["invalidation_status"] == "pending"
    assert summary["action"] == "revoked" and 0 <= summary["invalidation_pending_seconds"] < 60

    reviews.record_invalidation(session, key_ids=[key.id], reason="revoked")

    assert review.status is ReviewStatus.RESOLVED and review.resolved_by == "gateway"
    assert [e["event"] for e in dispatched(session)] == ["review.opened", "review.resolved"]
