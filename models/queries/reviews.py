"""Read models for revocation reviews, their findings, and the blast-radius preview."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, exists, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from models import key_scope
from models.access import Viewer, managed_team_ids, require_can_view_user, visible_users
from models.actions import lifecycle
from models.actions.notification_deliveries import deliveries_of
from models.actions.reviews import (
    affected_team_ids,
    answerable_by_hand,
    finding_summary,
    other_active_managers_of_team,
)
from models.actions.teams import get_team
from models.actions.users import get_user
from models.base import utcnow
from models.entities import (
    ApiToken,
    Organisation,
    ReviewFinding,
    Revocation,
    RevocationReview,
    Team,
    TeamMembership,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import (
    FindingState,
    ReviewCause,
    ReviewStatus,
    Severity,
    TeamRole,
    UserStatus,
)
from models.errors import Forbidden, InvalidInput, NotFound
from models.queries import unseen

PREVIEW_USAGE_DAYS = 30
MAX_PAGE = 200
LISTED_CANDIDATES = 200


@dataclass(frozen=True)
class ReviewFilter:
    status: ReviewStatus | None = None
    user_id: uuid.UUID | None = None
    cause: ReviewCause | None = None


def list_reviews(
    session: Session,
    viewer: Viewer,
    filters: ReviewFilter,
    *,
    limit: int = 50,
    after: uuid.UUID | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Reviews the viewer may see (managers: those touching their teams), newest first."""
    query = select(RevocationReview, User).outerjoin(User, User.id == RevocationReview.user_id)
    query = query.where(RevocationReview.organisation_id == viewer.organisation_id)
    if not viewer.is_admin:
        teams = managed_team_ids(session, viewer)
        query = query.where(_touches_teams(teams))
    if filters.status:
        query = query.where(RevocationReview.status == filters.status)
    if filters.user_id:
        query = query.where(RevocationReview.user_id == filters.user_id)
    if filters.cause:
        query = query.where(RevocationReview.cause == filters.cause)
    if after:
        query = query.where(RevocationReview.id < after)
    limit = max(1, min(limit, MAX_PAGE))
    rows = session.execute(query.order_by(RevocationReview.id.desc()).limit(limit + 1)).all()
    counts = _finding_counts(session, [review.id for review, _ in rows[:limit]])
    items = [
        review_summary(review, user, counts.get(review.id, {})) for review, user in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1][0].id) if len(rows) > limit else None
    return items, next_cursor


def open_reviews_by_urgency(session: Session, viewer: Viewer) -> dict[str, int]:
    """Open reviews the viewer may see, counted by their most severe open finding."""
    finding = aliased(ReviewFinding)  # not the findings the team filter correlates
    query = (
        select(RevocationReview.id, finding.severity)
        .join(finding, finding.review_id == RevocationReview.id)
        .where(
            RevocationReview.organisation_id == viewer.organisation_id,
            RevocationReview.status == ReviewStatus.OPEN,
            finding.state == FindingState.OPEN,
        )
    )
    if not viewer.is_admin:
        query = query.where(_touches_teams(managed_team_ids(session, viewer)))
    worst: dict[uuid.UUID, str] = {}
    for review_id, severity in session.execute(query):
        level = Severity(severity).value
        if review_id not in worst or SEVERITY_ORDER[level] < SEVERITY_ORDER[worst[review_id]]:
            worst[review_id] = level
    counts = dict.fromkeys(SEVERITY_ORDER, 0)
    for level in worst.values():
        counts[level] += 1
    return counts


def _touches_teams(teams: set[uuid.UUID]) -> Any:
    in_team = exists().where(
        ReviewFinding.review_id == RevocationReview.id, ReviewFinding.team_id.in_(teams)
    )
    member = exists().where(
        TeamMembership.user_id == RevocationReview.user_id, TeamMembership.team_id.in_(teams)
    )
    return or_(in_team, member, RevocationReview.team_id.in_(teams))


def visible_review(session: Session, viewer: Viewer, review_id: uuid.UUID) -> RevocationReview:
    """The review, if this viewer may see it; otherwise not found."""
    review = session.get(RevocationReview, review_id)
    if review is None or review.organisation_id != viewer.organisation_id:
        raise NotFound("review not found")
    if viewer.is_admin:
        return review
    if not viewer.is_manager or not (
        managed_team_ids(session, viewer) & affected_team_ids(session, review)
    ):
        raise NotFound("review not found")
    return review


def visible_finding(
    session: Session, viewer: Viewer, finding_id: uuid.UUID, *, to_change: bool = False
) -> ReviewFinding:
    """The finding; managers may see a review touching their teams but only change findings
    of the teams they manage."""
    finding = session.get(ReviewFinding, finding_id)
    if finding is None:
        raise NotFound("finding not found")
    visible_review(session, viewer, finding.review_id)
    if (
        to_change
        and not viewer.is_admin
        and (finding.team_id is None or finding.team_id not in managed_team_ids(session, viewer))
    ):
        raise Forbidden("only an Organisation Admin or the team's manager can change this")
    return finding


def reassignment_owner(
    session: Session, viewer: Viewer, *, user_id: uuid.UUID | None, team_id: uuid.UUID | None
) -> tuple[User | None, Team | None]:
    """The new owner a reassignment names; a manager hands resources only to a team they
    manage."""
    to_user = get_user(session, viewer.organisation_id, user_id) if user_id else None
    to_team = get_team(session, viewer.organisation_id, team_id) if team_id else None
    if (
        to_team is not None
        and not viewer.is_admin
        and to_team.id not in managed_team_ids(session, viewer)
    ):
        raise Forbidden("a manager can hand resources only to a team they manage")
    return to_user, to_team


def reassignment_candidates(session: Session, viewer: Viewer) -> tuple[list[User], list[Team]]:
    """Whom this viewer may hand a finding's resource to: ACTIVE people they can see, and the
    teams they manage (the first LISTED_CANDIDATES of each, by name)."""
    users = session.scalars(
        select(User)
        .where(visible_users(viewer), User.status == UserStatus.ACTIVE)
        .order_by(User.email_key)
        .limit(LISTED_CANDIDATES)
    ).all()
    teams = session.scalars(
        select(Team)
        .where(Team.id.in_(managed_team_ids(session, viewer)))
        .order_by(Team.name_key)
        .limit(LISTED_CANDIDATES)
    ).all()
    return list(users), list(teams)


def review_detail(
    session: Session,
    viewer: Viewer,
    review_id: uuid.UUID,
    *,
    limit: int = MAX_PAGE,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The review and a page of its findings (open first, most severe first); a campaign's
    review can hold 100,000."""
    review = visible_review(session, viewer, review_id)
    user = session.get(User, review.user_id) if review.user_id else None
    page = findings_page(session, review, limit=limit, after=after, before=before)
    counts = _finding_counts(session, [review.id]).get(review.id, {})
    return {
        **review_summary(review, user, counts),
        "context": review.context,
        "revocation": _revocation_view(session, review.revocation_id),
        "finding_counts": counts,
        "findings": finding_views(session, page.findings),
        "findings_next_cursor": page.next_cursor,
        "findings_previous_cursor": page.previous_cursor,
        "alerted": [
            {
                "event": d["event"],
                "to": d["recipient_email"] or d["hook_id"],
                "status": d["status"],
                "delivered_at": d["delivered_at"],
            }
            for d in deliveries_of(
                session, organisation_id=review.organisation_id, review_id=review.id, limit=500
            )
        ],
    }


def _revocation_view(session: Session, revocation_id: uuid.UUID | None) -> dict[str, Any] | None:
    if revocation_id is None:
        return None
    revocation = session.get_one(Revocation, revocation_id)
    return {
        "id": str(revocation.id),
        "source": revocation.source.value,
        "actor": revocation.actor,
        "reason": revocation.reason,
        "revoked_at": revocation.revoked_at.isoformat(),
        "undone_at": revocation.undone_at.isoformat() if revocation.undone_at else None,
    }


SEVERITY_ORDER = {"urgent": 0, "high": 1, "medium": 2, "low": 3}


def _finding_order() -> tuple[Any, ...]:
    """Open first, then the most severe, by kind; the id makes the order total (a cursor)."""
    closed = case((ReviewFinding.state == FindingState.OPEN, 0), else_=1)
    rank = case(
        *[(ReviewFinding.severity == Severity(name), n) for name, n in SEVERITY_ORDER.items()]
    )
    return (closed, rank, ReviewFinding.kind, ReviewFinding.id)


@dataclass(frozen=True)
class FindingsPage:
    """A page of a review's findings and the cursors either side of it (None: no more)."""

    findings: list[ReviewFinding]
    next_cursor: str | None
    previous_cursor: str | None


def findings_page(
    session: Session,
    review: RevocationReview,
    *,
    limit: int,
    after: uuid.UUID | None,
    before: uuid.UUID | None = None,
) -> FindingsPage:
    """A page of the review's findings: those after the `after` finding (the next page), or
    those just before the `before` finding (the previous page); a cursor is a finding id."""
    if after is not None and before is not None:
        raise InvalidInput("give cursor or before, not both", field="before")
    order = _finding_order()
    limit = max(1, min(limit, MAX_PAGE))
    query = select(ReviewFinding).where(ReviewFinding.review_id == review.id)
    anchor = _cursor_position(session, review, order, after or before)
    if before is None:
        if anchor is not None:
            query = query.where(tuple_(*order) > anchor)
        rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
        page, more_after, more_before = rows[:limit], len(rows) > limit, after is not None
    else:
        query = query.where(tuple_(*order) < anchor)
        rows = list(session.scalars(query.order_by(*(o.desc() for o in order)).limit(limit + 1)))
        page, more_after, more_before = rows[:limit][::-1], True, len(rows) > limit
    return FindingsPage(
        findings=page,
        next_cursor=str(page[-1].id) if page and more_after else None,
        previous_cursor=str(page[0].id) if page and more_before else None,
    )


def _cursor_position(
    session: Session, review: RevocationReview, order: tuple[Any, ...], cursor: uuid.UUID | None
) -> Any:
    """Where the cursor's finding sits in the findings' order (None: no cursor)."""
    if cursor is None:
        return None
    position = session.execute(
        select(*order).where(ReviewFinding.review_id == review.id, ReviewFinding.id == cursor)
    ).one_or_none()
    if position is None:
        raise InvalidInput("cursor is not a finding of this review", field="cursor")
    return tuple_(*[literal(v) for v in position])


def review_summary(
    review: RevocationReview, user: User | None, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": str(review.id),
        "status": review.status.value,
        "cause": review.cause.value,
        "user": {"id": str(user.id), "email": user.email, "name": user.name} if user else None,
        "team": (
            {"id": str(review.team_id), "name": review.context.get("team_name", "")}
            if review.team_id
            else None
        ),
        "revocation_id": str(review.revocation_id) if review.revocation_id else None,
        "opened_at": review.created_at.isoformat(),
        "resolved_at": review.resolved_at.isoformat() if review.resolved_at else None,
        "resolved_by": review.resolved_by,
        "findings": counts,
    }


def finding_view(session: Session, finding: ReviewFinding) -> dict[str, Any]:
    return finding_views(session, [finding])[0]


def finding_views(session: Session, findings: Sequence[ReviewFinding]) -> list[dict[str, Any]]:
    """The findings as the admin API shows them, each with whether Odock's listings have
    lately lacked its key, budget or quota (`subject_unseen_since`; one query per kind)."""
    marks = unseen.of_subjects(session, ((f.subject_type, f.subject_id) for f in findings))
    return [
        {
            **_finding_view(finding),
            **unseen.unseen_view(
                *marks.get((finding.subject_type, finding.subject_id), (None, 0)),
                prefix="subject_",
            ),
        }
        for finding in findings
    ]


def _finding_view(finding: ReviewFinding) -> dict[str, Any]:
    return {
        **finding_summary(finding),
        "review_id": str(finding.review_id),
        "detail": finding.detail,
        "resolved_by": finding.resolved_by,
        "resolved_at": finding.resolved_at.isoformat() if finding.resolved_at else None,
        "resolution": finding.resolution,
        "answerable_by_hand": answerable_by_hand(finding),
        "invalidated_at": _moment(finding.invalidated_at),
        "store_acknowledged_at": _moment(finding.store_acknowledged_at),
        "gateway_invalidated_at": _moment(finding.invalidated_at),
        "gateway_proof": finding.gateway_proof,
        "acknowledged_by": finding.acknowledged_by,
        "acknowledged_at": finding.acknowledged_at.isoformat() if finding.acknowledged_at else None,
        "escalation_level": finding.escalation_level,
        "next_escalation_at": (
            finding.next_escalation_at.isoformat() if finding.next_escalation_at else None
        ),
    }


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _finding_counts(
    session: Session, review_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    if not review_ids:
        return {}
    rows = session.execute(
        select(ReviewFinding.review_id, ReviewFinding.state, func.count())
        .where(ReviewFinding.review_id.in_(review_ids))
        .group_by(ReviewFinding.review_id, ReviewFinding.state)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for review_id, state, count in rows:
        counts.setdefault(review_id, {})[FindingState(state).value] = int(count)
    return counts


# --- blast-radius preview -----------------------------------------------------------------


def revocation_preview(session: Session, viewer: Viewer, user_id: uuid.UUID) -> dict[str, Any]:
    """What revoking this person would do, computed without changing anything."""
    user = require_can_view_user(session, viewer, user_id)
    policy = session.get_one(Organisation, user.organisation_id).settings
    since = utcnow() - timedelta(days=PREVIEW_USAGE_DAYS)
    scope = key_scope.revocation(policy, user.id)
    keys = {group.kind: (group, key_scope.active_keys(session, group)) for group in scope.keys}
    key_usage = _usage_by_key(
        session, [key.id for _, found in keys.values() for key in found], since
    )

    def preview(kind: str) -> list[dict[str, Any]]:
        group, found = keys[kind]
        return [_preview_key(key, group.action, key_usage) for key in found]

    return {
        "user": {
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "status": user.status.value,
        },
        "can_revoke": lifecycle.admin_may_revoke(session, user),
        "policy": {
            "user_keys": policy.user_key_policy.value,
            "team_keys": policy.team_key_policy.value,
            "org_keys": policy.org_key_policy.value,
            "budgets_and_quotas": "flag_for_transfer",
        },
        "keys": preview(key_scope.KIND_USER_KEY),
        "team_keys": preview(key_scope.KIND_TEAM_KEY),
        "org_keys": preview(key_scope.KIND_ORG_KEY),
        "teams": _preview_teams(session, user),
        "budgets": [
            {
                "id": str(b.id),
                "name": b.name,
                "amount": str(b.amount),
                "currency": b.currency,
                **unseen.of_object(b),
            }
            for b in key_scope.budgets(session, scope)
        ],
        "quotas": [
            {
                "id": str(q.id),
                "name": q.name,
                "metric": q.metric,
                "limit": q.limit,
                **unseen.of_object(q),
            }
            for q in key_scope.quotas(session, scope)
        ],
        "admin_tokens": [
            {"id": str(t.id), "name": t.name, "prefix": t.prefix, "action": "revoke"}
            for t in session.scalars(
                select(ApiToken)
                .where(key_scope.admin_tokens_of(user.id), ApiToken.revoked_at.is_(None))
                .order_by(ApiToken.created_at)
            )
        ],
        "usage": _usage_summary(session, user, since),
    }


def _preview_key(
    key: VirtualApiKey, action: str, usage: dict[uuid.UUID, dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "masked_value": key.masked_value,
        "type": key.key_type.value,
        "team_id": str(key.owner_team_id) if key.owner_team_id else None,
        "action": action,
        "usage_last_30_days": usage.get(key.id, {"requests": 0, "cost": "0"}),
        **unseen.of_object(key),
    }


def _preview_teams(session: Session, user: User) -> list[dict[str, Any]]:
    other_managers = other_active_managers_of_team(user)
    rows = session.execute(
        select(Team.id, Team.name, TeamMembership.role, other_managers)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user.id)
        .order_by(Team.name_key)
    )
    return [
        {
            "id": str(team_id),
            "name": name,
            "team_role": TeamRole(role).value,
            "left_without_manager": TeamRole(role) is TeamRole.MANAGER and count == 0,
        }
        for team_id, name, role, count in rows
    ]


def _usage_by_key(
    session: Session, key_ids: list[uuid.UUID], since: Any
) -> dict[uuid.UUID, dict[str, Any]]:
    if not key_ids:
        return {}
    rows = session.execute(
        select(
            UsageRecord.api_key_id,
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.cost), 0),
            func.max(UsageRecord.occurred_at),
        )
        .where(UsageRecord.api_key_id.in_(key_ids), UsageRecord.occurred_at >= since)
        .group_by(UsageRecord.api_key_id)
    )
    return {
        key_id: {
            "requests": int(count),
            "cost": str(Decimal(cost)),
            "last_used_at": last.isoformat() if last else None,
        }
        for key_id, count, cost, last in rows
        if key_id is not None
    }


def _usage_summary(session: Session, user: User, since: Any) -> dict[str, Any]:
    count, cost, tokens_in, tokens_out, last = session.execute(
        select(
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.cost), 0),
            func.coalesce(func.sum(UsageRecord.input_tokens), 0),
            func.coalesce(func.sum(UsageRecord.output_tokens), 0),
            func.max(UsageRecord.occurred_at),
        ).where(UsageRecord.user_id == user.id, UsageRecord.occurred_at >= since)
    ).one()
    return {
        "days": PREVIEW_USAGE_DAYS,
        "requests": int(count),
        "spend": str(Decimal(cost)),
        "input_tokens": int(tokens_in),
        "output_tokens": int(tokens_out),
        "last_used_at": last.isoformat() if last else None,
    }
