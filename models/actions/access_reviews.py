"""Access changes that are not a revocation but still leave keys, budgets or quotas behind.

A team deleted, a team's MANAGER role lost, a team left, an organisation role dropped: the
key-scope policy says what each touches, this module acts on it (a deleted team's keys are
revoked or handed to their creator, per the organisation's policy) and opens a review with
the findings, notified and escalated like a revocation's review. A change that touches
nothing, or only what an open review already covers, opens nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import key_scope
from models.actions import key_revocation
from models.actions import reviews as review_actions
from models.actions.reviews import Desired
from models.actor import Actor
from models.entities import (
    Budget,
    Organisation,
    Quota,
    RevocationReview,
    Team,
    TeamMembership,
    User,
    VirtualApiKey,
)
from models.enums import ReviewCause, Role, Severity, TeamRole, UserStatus


def review_team_deletion(session: Session, *, team: Team, actor: Actor) -> RevocationReview | None:
    """Before a team goes: no key of it stays active without an owner (revoked, or handed to
    its creator, per policy), and its budgets and quotas are flagged for a new owner."""
    settings = session.get_one(Organisation, team.organisation_id).settings
    scope = key_scope.team_deletion(settings, team.id)
    desired: list[Desired] = []
    for group in scope.keys:
        desired += _settle_team_keys(session, team, group, actor)
    desired += [review_actions.ownership_finding(row) for row in key_scope.budgets(session, scope)]
    desired += [review_actions.ownership_finding(row) for row in key_scope.quotas(session, scope)]
    if not desired:
        return None
    return review_actions.open_access_review(
        session,
        organisation_id=team.organisation_id,
        cause=ReviewCause.TEAM_DELETED,
        desired=desired,
        actor=actor,
        team_id=team.id,
        context={
            "team_name": team.name,
            "key_policy": settings.deleted_team_key_policy.value,
            "manager_ids": [str(uid) for uid in _manager_ids(session, team)],
        },
    )


def review_team_role_lost(
    session: Session, *, team: Team, user: User, cause: ReviewCause, actor: Actor
) -> RevocationReview | None:
    """The person no longer manages the team, or left it: the team keys they created there."""
    if user.status is UserStatus.REVOKED:
        return None  # their revocation's review already lists every team key they created
    scope = key_scope.team_role_lost(team.id, user.id)
    desired = _held_key_findings(session, scope)
    if not desired:
        return None
    return review_actions.open_access_review(
        session,
        organisation_id=team.organisation_id,
        cause=cause,
        desired=desired,
        actor=actor,
        user_id=user.id,
        team_id=team.id,
        context={"team_name": team.name},
    )


def review_role_drop(
    session: Session, *, user: User, before: Role, actor: Actor
) -> RevocationReview | None:
    """The person's organisation role dropped: keys they created that it no longer covers."""
    scope = key_scope.org_role_dropped(user.id, before=before, after=user.role)
    desired = _held_key_findings(session, scope)
    if not desired:
        return None
    return review_actions.open_access_review(
        session,
        organisation_id=user.organisation_id,
        cause=ReviewCause.ORG_ROLE_DROPPED,
        desired=desired,
        actor=actor,
        user_id=user.id,
        context={"role_before": before.value, "role_after": user.role.value},
    )


def review_role_drops(
    session: Session, *, drops: Sequence[tuple[User, Role]], actor: Actor
) -> None:
    """review_role_drop for each of many people whose role dropped (user, role before),
    after one read of which of them created an active key: only those can have one to
    review, so a large group's role taken back reads and writes nothing per other member."""
    if not drops:
        return
    session.flush()
    creators = set(
        session.scalars(
            select(VirtualApiKey.created_by_user_id)
            .where(
                VirtualApiKey.created_by_user_id.in_([user.id for user, _ in drops]),
                VirtualApiKey.revoked.is_(False),
            )
            .distinct()
        )
    )
    for user, before in drops:
        if user.id in creators:
            review_role_drop(session, user=user, before=before, actor=actor)


def review_identity_change(
    session: Session, *, user: User, previous_external_id: str, external_id: str, actor: Actor
) -> RevocationReview | None:
    """A directory relinked the person to a new entry (a re-hire with the same email): the keys
    they hold are listed, for an admin to confirm the new entry is the same person."""
    settings = session.get_one(Organisation, user.organisation_id).settings
    desired = _held_key_findings(session, key_scope.revocation(settings, user.id))
    if not desired:
        return None
    return review_actions.open_access_review(
        session,
        organisation_id=user.organisation_id,
        cause=ReviewCause.IDENTITY_CHANGED,
        desired=desired,
        actor=actor,
        user_id=user.id,
        context={"previous_external_id": previous_external_id, "external_id": external_id},
    )


def review_departure(session: Session, *, user: User, actor: Actor) -> RevocationReview | None:
    """The person's access ends on a known date: the team and organisation keys they created
    (which need a new owner) and the budgets and quotas their revocation leaves behind, opened
    before the day so they can be handed over first. Their own keys simply end with them."""
    desired = departure_findings(session, user)
    covered = review_actions.under_review(session, [item.subject_id for item in desired])
    desired = [item for item in desired if item.subject_id not in covered]
    if not desired:
        return None
    ends_at = user.access_ends_at.isoformat() if user.access_ends_at else ""
    return review_actions.open_access_review(
        session,
        organisation_id=user.organisation_id,
        cause=ReviewCause.DEPARTURE,
        desired=desired,
        actor=actor,
        user_id=user.id,
        context={"access_ends_at": ends_at},
    )


def refresh_departure(
    session: Session, *, review: RevocationReview, user: User, actor: Actor
) -> review_actions.RefreshResult:
    """The departure review kept for a moved date (or re-read at notice time) follows what the
    person holds now: a finding for each key, budget or quota they took on since, and the
    open findings about what they no longer hold resolved. Audited `review.updated`."""
    desired = departure_findings(session, user)
    listed = {finding.subject_id for finding in review.findings}
    fresh = [item for item in desired if item.subject_id not in listed]
    covered = review_actions.under_review(session, [item.subject_id for item in fresh])
    held = {item.subject_id for item in desired}
    return review_actions.follow_findings(
        session,
        review=review,
        added=[item for item in fresh if item.subject_id not in covered],
        cleared=[f for f in review.findings if f.subject_id not in held],
        actor=actor,
        note="no longer held by the person",
    )


def departure_findings(session: Session, user: User) -> list[Desired]:
    """Every finding the person's departure calls for now, per the key-scope policy: the team
    and organisation keys they created, and the budgets and quotas left behind."""
    settings = session.get_one(Organisation, user.organisation_id).settings
    scope = key_scope.revocation(settings, user.id)
    keys = [
        (group.kind, key)
        for group in scope.keys
        if group.kind != key_scope.KIND_USER_KEY
        for key in key_scope.active_keys(session, group)
    ]
    rows: list[Budget | Quota] = [
        *key_scope.budgets(session, scope),
        *key_scope.quotas(session, scope),
    ]
    return [review_actions.key_finding(kind, key) for kind, key in keys] + [
        review_actions.ownership_finding(row) for row in rows
    ]


def _held_key_findings(session: Session, scope: key_scope.Scope) -> list[Desired]:
    """Active keys in scope, each an open finding, unless an open review already has it."""
    found = [
        (group.kind, key) for group in scope.keys for key in key_scope.active_keys(session, group)
    ]
    covered = review_actions.under_review(session, [key.id for _, key in found])
    return [review_actions.key_finding(kind, key) for kind, key in found if key.id not in covered]


def _settle_team_keys(
    session: Session, team: Team, group: key_scope.KeyGroup, actor: Actor
) -> list[Desired]:
    keys = key_scope.active_keys(session, group)
    creators = _active_creators(session, keys) if group.action == key_scope.REASSIGN else {}
    to_creator = [key for key in keys if key.created_by_user_id in creators]
    reassigned = [_reassign_to_creator(session, key, creators, actor) for key in to_creator]
    to_revoke = [key.id for key in keys if key not in to_creator]
    revoked = to_revoke and key_revocation.revoke_keys(
        session,
        organisation_id=team.organisation_id,
        scope=VirtualApiKey.id.in_(to_revoke),
        actor=actor,
        reason="team_deleted",
        audit_detail={"team_id": str(team.id), "by": "team deletion"},
    )
    return reassigned + [_revoked_finding(key) for key in keys if key.id in revoked]


def _revoked_finding(key: VirtualApiKey) -> Desired:
    item = review_actions.key_finding(key_scope.KIND_TEAM_KEY, key)
    item.action, item.action_taken, item.severity = "revoked", True, Severity.MEDIUM
    item.invalidation_status = review_actions.INVALIDATION_PENDING
    return item


def _reassign_to_creator(
    session: Session, key: VirtualApiKey, creators: dict[uuid.UUID, User], actor: Actor
) -> Desired:
    """The key becomes its creator's own key: it keeps working, with an owner again."""
    assert key.created_by_user_id is not None
    creator = creators[key.created_by_user_id]
    item = review_actions.key_finding(key_scope.KIND_TEAM_KEY, key)
    key_revocation.reassign_key(
        session,
        key=key,
        owner_user_id=creator.id,
        owner_team_id=None,
        actor=actor,
        reason="owner",
        audit_detail={"by": "team deletion"},
    )
    item.action, item.action_taken = "reassigned", True
    new_owner = {"user_id": str(creator.id), "email": creator.email}
    item.detail = {**item.detail, "reassigned_to": new_owner}
    return item


def _ownership(key: VirtualApiKey) -> dict[str, Any]:
    return {
        "key_type": key.key_type.value,
        "owner_user_id": str(key.owner_user_id) if key.owner_user_id else None,
        "owner_team_id": str(key.owner_team_id) if key.owner_team_id else None,
    }


def _active_creators(session: Session, keys: list[VirtualApiKey]) -> dict[uuid.UUID, User]:
    ids = {key.created_by_user_id for key in keys if key.created_by_user_id}
    if not ids:
        return {}
    users = session.scalars(select(User).where(User.id.in_(ids), User.status == UserStatus.ACTIVE))
    return {user.id: user for user in users}


def _manager_ids(session: Session, team: Team) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(TeamMembership.user_id).where(
                TeamMembership.team_id == team.id, TeamMembership.role == TeamRole.MANAGER
            )
        )
    )
