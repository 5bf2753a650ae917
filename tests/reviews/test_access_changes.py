"""Access-change reviews on the real database: a deleted team, a lost team role, a left team,
a dropped organisation role. Each opens a review with findings from the key-scope policy."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from models.actions import lifecycle, reviews
from models.actions import teams as team_actions
from models.actions import users as user_actions
from models.entities import (
    AuditEvent,
    Budget,
    OutboxMessage,
    Quota,
    RevocationReview,
    VirtualApiKey,
)
from models.enums import (
    DeletedTeamKeyPolicy,
    FindingState,
    KeyType,
    OwnerType,
    ReviewCause,
    ReviewStatus,
    Role,
    TeamRole,
)
from tests.reviews.conftest import findings_by_kind
from tests.support import factories as f


def team_world(session):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    manager = f.make_user(session, org, role=Role.MANAGER, email=f"mgr-{org.slug}@example.com")
    member = f.make_user(session, org, email=f"member-{org.slug}@example.com")
    team = f.make_team(session, org, "Data")
    f.add_member(session, team, manager, TeamRole.MANAGER)
    f.add_member(session, team, member)
    team_key = f.make_key(session, org, team=team, created_by=manager)
    member_key = f.make_key(session, org, owner=member)
    member_key.owner_team_id = team.id
    budget = Budget(
        organisation_id=org.id,
        owner_type=OwnerType.TEAM,
        owner_id=team.id,
        name="team monthly",
        amount=Decimal("500"),
    )
    quota = Quota(
        organisation_id=org.id, owner_type=OwnerType.TEAM, owner_id=team.id, name="rpm", limit=60
    )
    session.add_all([budget, quota])
    session.flush()
    return org, admin, manager, member, team, team_key, member_key, budget, quota


def invalidated(session) -> list[list[str]]:
    return [
        m.kwargs["key_ids"]
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
        )
    ]


def notified(session) -> list[tuple[str, list[str]]]:
    return [
        (m.kwargs["event"], sorted(m.kwargs.get("recipient_user_ids") or []))
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "notifications.dispatch")
        )
    ]


def audit_actions(session, target_id) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_id == str(target_id))
            .order_by(AuditEvent.id)
        )
    )


def test_deleting_a_team_revokes_its_keys_and_flags_its_budgets_and_quotas(session):
    _org, admin, manager, _member, team, team_key, member_key, budget, quota = team_world(session)
    session.commit()

    review = team_actions.delete_team(session, team=team, actor=f.SETUP)
    session.flush()

    assert review is not None and review.cause is ReviewCause.TEAM_DELETED
    assert review.team_id == team.id and review.user_id is None and review.revocation_id is None
    assert review.context["team_name"] == "Data"
    assert review.context["manager_ids"] == [str(manager.id)]
    by_kind = findings_by_kind(review)
    (key_finding,) = by_kind["team_key"]
    assert key_finding.subject_id == team_key.id and key_finding.action == "revoked"
    # revoked by policy; open until the gateway forgets the key, with no reminders meanwhile
    assert key_finding.state is FindingState.OPEN and key_finding.action_taken
    assert key_finding.invalidation_status == "pending" and key_finding.next_escalation_at is None
    assert [fi.subject_id for fi in by_kind["budget"]] == [budget.id]
    assert [fi.subject_id for fi in by_kind["quota"]] == [quota.id]
    assert all(fi.state is FindingState.OPEN for fi in by_kind["budget"] + by_kind["quota"])
    assert review.status is ReviewStatus.OPEN
    session.commit()
    session.expire_all()
    key = session.get(VirtualApiKey, team_key.id)
    assert key.revoked and key.revoked_by_revocation_id is None
    # a person's own key in the team keeps its owner and stays active
    assert session.get(VirtualApiKey, member_key.id).revoked is False
    assert invalidated(session) == [[str(team_key.id)]]
    assert audit_actions(session, team_key.id) == ["api_key.revoked"]
    assert audit_actions(session, team.id)[-1] == "team.deleted"
    assert "review.opened" in audit_actions(session, review.id)
    # the team's former manager and the admins are told, though the team is gone
    ((event, recipients),) = notified(session)
    assert event == "review.opened"
    assert recipients == sorted([str(admin.id), str(manager.id)])


def test_reassign_policy_hands_a_team_key_to_its_active_creator_and_revokes_the_rest(session):
    org, _admin, manager, member, team, team_key, _mk, _b, _q = team_world(session)
    org.settings.deleted_team_key_policy = DeletedTeamKeyPolicy.REASSIGN
    orphan_key = f.make_key(session, org, team=team, created_by=member)
    lifecycle.revoke(session, user=member, actor=f.SETUP)
    session.commit()

    review = team_actions.delete_team(session, team=team, actor=f.SETUP)
    session.commit()
    session.expire_all()

    kept = session.get(VirtualApiKey, team_key.id)
    assert not kept.revoked and kept.key_type is KeyType.USER
    assert kept.owner_user_id == manager.id and kept.owner_team_id is None
    assert session.get(VirtualApiKey, orphan_key.id).revoked is True
    actions = {fi.subject_id: fi.action for fi in review.findings if fi.subject_type == "api_key"}
    assert actions == {team_key.id: "reassigned", orphan_key.id: "revoked"}
    assert audit_actions(session, team_key.id) == ["api_key.reassigned"]


def test_deleting_a_team_that_holds_nothing_opens_no_review(session):
    org = f.make_org(session)
    team = f.make_team(session, org, "Empty")
    session.commit()

    assert team_actions.delete_team(session, team=team, actor=f.SETUP) is None
    session.commit()
    assert session.scalars(select(RevocationReview)).all() == []


def test_losing_the_manager_role_opens_a_review_of_the_team_keys_they_created(session):
    _org, admin, manager, _member, team, team_key, _mk, _b, _q = team_world(session)
    session.commit()

    team_actions.add_to_team(session, team=team, user=manager, role=TeamRole.MEMBER, actor=f.SETUP)
    session.commit()

    (review,) = session.scalars(select(RevocationReview)).all()
    assert review.cause is ReviewCause.MANAGER_ROLE_LOST
    assert (review.user_id, review.team_id) == (manager.id, team.id)
    (finding,) = review.findings
    assert finding.subject_id == team_key.id and finding.action == "hold_for_review"
    assert finding.state is FindingState.OPEN and finding.team_id == team.id
    # held, not revoked: the person is still ACTIVE and the key may still be needed
    assert session.get(VirtualApiKey, team_key.id).revoked is False
    assert invalidated(session) == []
    ((event, recipients),) = notified(session)
    assert event == "review.opened" and recipients == sorted([str(manager.id), str(admin.id)])


def test_leaving_a_team_opens_a_review_once_for_keys_not_already_under_review(session):
    org, _admin, manager, _member, team, _team_key, _mk, _b, _q = team_world(session)
    session.commit()
    team_actions.add_to_team(session, team=team, user=manager, role=TeamRole.MEMBER, actor=f.SETUP)
    later_key = f.make_key(session, org, team=team, created_by=manager)
    session.commit()

    team_actions.remove_from_team(session, team=team, user=manager, actor=f.SETUP)
    session.commit()

    left = session.scalars(
        select(RevocationReview).where(RevocationReview.cause == ReviewCause.LEFT_TEAM)
    ).one()
    # the first key is on the open manager_role_lost review already; only the new one is added
    assert [fi.subject_id for fi in left.findings] == [later_key.id]


def test_a_member_who_created_nothing_leaves_without_a_review(session):
    _org, _admin, _manager, member, team, *_ = team_world(session)
    session.commit()

    assert team_actions.remove_from_team(session, team=team, user=member, actor=f.SETUP)
    session.commit()

    assert session.scalars(select(RevocationReview)).all() == []


def test_an_org_role_drop_opens_a_review_of_the_keys_the_old_role_covered(session):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email="other-admin@example.com")
    person = f.make_user(session, org, role=Role.ORG_ADMIN, email="was-admin@example.com")
    managed, other = f.make_team(session, org, "Managed"), f.make_team(session, org, "Other")
    f.add_member(session, managed, person, TeamRole.MANAGER)
    org_key = f.make_key(session, org, key_type=KeyType.ORGANISATION, created_by=person)
    kept_team_key = f.make_key(session, org, team=managed, created_by=person)
    other_team_key = f.make_key(session, org, team=other, created_by=person)
    session.commit()

    user_actions.edit_user(session, user=person, role=Role.USER, actor=f.SETUP)
    session.commit()

    (review,) = session.scalars(select(RevocationReview)).all()
    assert review.cause is ReviewCause.ORG_ROLE_DROPPED and review.user_id == person.id
    assert review.context == {"role_before": "ORG_ADMIN", "role_after": "USER"}
    kinds = {fi.subject_id: fi.kind for fi in review.findings}
    # a team they still manage keeps its key theirs to hold
    assert kinds == {org_key.id: "org_key", other_team_key.id: "team_key"}
    assert kept_team_key.id not in kinds
    ((event, recipients),) = notified(session)
    assert event == "review.opened" and str(admin.id) in recipients


def test_a_role_raise_or_an_unchanged_role_opens_nothing(session):
    org = f.make_org(session)
    person = f.make_user(session, org, role=Role.MANAGER)
    f.make_key(session, org, key_type=KeyType.ORGANISATION, created_by=person)
    session.commit()

    user_actions.edit_user(session, user=person, role=Role.ORG_ADMIN, actor=f.SETUP)
    user_actions.edit_user(session, user=person, name="Renamed", actor=f.SETUP)
    session.commit()

    assert session.scalars(select(RevocationReview)).all() == []


def test_access_reviews_escalate_like_revocation_reviews(session):
    from datetime import timedelta

    from models.base import utcnow

    team = team_world(session)[4]
    session.commit()
    review = team_actions.delete_team(session, team=team, actor=f.SETUP)
    session.commit()
    session.query(OutboxMessage).delete()
    session.commit()

    escalated = reviews.escalate_due(session, actor=f.SETUP, now=utcnow() + timedelta(days=2))
    session.commit()

    assert escalated == 2  # the budget and the quota; the revoked key waits on the gateway
    ((event, _recipients),) = notified(session)
    assert event == "review.escalated"
    assert "review.escalated" in audit_actions(session, review.id)
