"""Revocation reviews: find what a revoked person owned or held, act per policy, follow up.

`open_revocation_review` runs once per revocation (the outbox task); `refresh_review` is the
re-runnable core that the sweep also calls: it adds findings that are missing, updates usage
seen after the revocation, and resolves findings whose cause has gone. Running it twice in a
row changes nothing the second time.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ScalarSelect, Select, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from models import audit, key_scope
from models.actions import cutoffs, exit_spend, key_revocation, tokens
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    ApiToken,
    Budget,
    KeyInvalidation,
    Organisation,
    Quota,
    ReviewFinding,
    Revocation,
    RevocationReview,
    StoreCommand,
    Team,
    TeamMembership,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import (
    FindingState,
    OwnerType,
    ReviewCause,
    ReviewStatus,
    Role,
    Severity,
    TeamRole,
    UserStatus,
)
from models.errors import AuditedRefusal, InvalidInput, InvalidTransition, NotFound
from models.key_changes import (
    is_bridged,
    latest_revoke_command,
    latest_revoke_commands,
    store_acknowledged_at,
    store_facts,
)
from models.notifications import notify

KIND_USER_KEY = key_scope.KIND_USER_KEY
KIND_TEAM_KEY = key_scope.KIND_TEAM_KEY
KIND_ORG_KEY = key_scope.KIND_ORG_KEY
KIND_LAST_MANAGER = "last_manager"
KIND_BUDGET = "budget"
KIND_QUOTA = "quota"
KIND_USAGE = "usage_after_revocation"
KIND_STILL_ACCEPTED = "key_still_accepted"
KIND_ADMIN_TOKEN = "admin_token"  # noqa: S105 (a finding kind, not a secret)
# Observed facts the sweep cannot recompute from the current state: it never clears them.
EVIDENCE_KINDS = (KIND_USAGE, KIND_STILL_ACCEPTED)
KEY_KINDS = key_scope.KEY_KINDS
KIND_RECERTIFY_KEY = "recertify_key"  # a key a recertification campaign asks its owner about
# Findings whose key's revocation the store and the gateway acknowledge.
INVALIDATED_KINDS = (*KEY_KINDS, KIND_RECERTIFY_KEY)

EVENT_OPENED = "review.opened"
EVENT_RESOLVED = "review.resolved"
EVENT_ESCALATED = "review.escalated"
EVENT_URGENT = "finding.urgent"

INVALIDATION_PENDING = "pending"
INVALIDATION_ACKNOWLEDGED = "acknowledged"

POLICY = "policy"
MAX_FINDINGS_IN_PAYLOAD = 100
LEVEL_OWNER, LEVEL_MANAGERS, LEVEL_ADMINS = 1, 2, 3


@dataclass
class Desired:
    """A finding as the current state of the world says it should be."""

    kind: str
    subject_type: str
    subject_id: uuid.UUID
    severity: Severity
    action: str
    action_taken: bool = False
    team_id: uuid.UUID | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    invalidation_status: str | None = None
    invalidated_at: datetime | None = None
    invalidation_requested_at: datetime | None = None
    store_acknowledged_at: datetime | None = None
    gateway_proof: dict[str, Any] | None = None
    observed_until: datetime | None = None


@dataclass
class RefreshResult:
    added: list[ReviewFinding] = field(default_factory=list)
    updated: list[ReviewFinding] = field(default_factory=list)
    cleared: list[ReviewFinding] = field(default_factory=list)
    revoked_key_ids: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.cleared)


# --- opening and refreshing -------------------------------------------------------------


def open_revocation_review(
    session: Session, *, revocation_id: uuid.UUID, actor: Actor, now: datetime | None = None
) -> RevocationReview | None:
    """The review of this revocation, opened once; None when the revocation was undone first."""
    now = now or utcnow()
    revocation = _lock(session, select(Revocation).where(Revocation.id == revocation_id))
    if revocation is None:
        raise NotFound("revocation not found")
    existing = review_of(session, revocation.id)
    if existing is not None:
        return existing
    if revocation.undone_at is not None:
        return None
    review = RevocationReview(
        organisation_id=revocation.organisation_id,
        user_id=revocation.user_id,
        revocation_id=revocation.id,
        context={"exit_spend": exit_spend.account(session, revocation=revocation)},
    )
    session.add(review)
    session.flush()
    result = refresh_review(session, review=review, actor=actor, now=now, announce=False)
    supersede_departure_review(
        session,
        user=session.get_one(User, revocation.user_id),
        actor=actor,
        note=f"the revocation's review {review.id} took it over",
        announce=False,
    )
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.opened",
        target_type="revocation_review",
        after={
            "revocation_id": str(revocation.id),
            "user_id": str(review.user_id),
            "findings": len(result.added),
            "keys_revoked": result.revoked_key_ids,
        },
    )
    _announce_opened(session, review, list(result.added), now)
    return review


def open_access_review(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    cause: ReviewCause,
    desired: list[Desired],
    actor: Actor,
    user_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> RevocationReview:
    """A review of an access change other than a revocation, opened in the change's own
    transaction with the findings its caller took from the key-scope policy."""
    now = now or utcnow()
    review = RevocationReview(
        organisation_id=organisation_id,
        cause=cause,
        user_id=user_id,
        team_id=team_id,
        context=context or {},
    )
    session.add(review)
    session.flush()
    interval = escalation_interval(session.get_one(Organisation, organisation_id))
    findings = [_add_finding(session, review, item, now, interval) for item in desired]
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.opened",
        target_type="revocation_review",
        after={
            "cause": cause.value,
            "user_id": _str(user_id),
            "team_id": _str(team_id),
            "findings": [_finding_ref(f) for f in findings],
            **(context or {}),
        },
    )
    _announce_opened(session, review, findings, now)
    return review


def _announce_opened(
    session: Session, review: RevocationReview, findings: list[ReviewFinding], now: datetime
) -> None:
    if not any(f.state is FindingState.OPEN for f in findings):
        # Policy already did everything: the review is born resolved, and says so.
        _close(session, review, actor=Actor.system(POLICY), now=now, announce=False)
    _notify_review(
        session, review, EVENT_OPENED, findings, audience=("owner", "managers", "admins")
    )
    urgent = [f for f in findings if f.severity is Severity.URGENT]
    if urgent:
        _notify_review(session, review, EVENT_URGENT, urgent, audience=("managers", "admins"))


def under_review(session: Session, subject_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these keys, budgets or quotas already have an open finding in an open review."""
    if not subject_ids:
        return set()
    return set(
        session.scalars(
            select(ReviewFinding.subject_id)
            .join(RevocationReview, RevocationReview.id == ReviewFinding.review_id)
            .where(
                ReviewFinding.subject_id.in_(subject_ids),
                ReviewFinding.state == FindingState.OPEN,
                RevocationReview.status == ReviewStatus.OPEN,
            )
        )
    )


def open_finding_about(subject_id: Any) -> Any:
    """SQL: an open finding of an open review is about this key, budget or quota (the
    condition under_review asks of a list of ids, for a set-based query)."""
    finding = aliased(ReviewFinding)
    return (
        select(finding.id)
        .join(RevocationReview, RevocationReview.id == finding.review_id)
        .where(
            finding.subject_id == subject_id,
            finding.state == FindingState.OPEN,
            RevocationReview.status == ReviewStatus.OPEN,
        )
        .exists()
    )


def refresh_review(
    session: Session,
    *,
    review: RevocationReview,
    actor: Actor,
    now: datetime | None = None,
    announce: bool = True,
) -> RefreshResult:
    """Bring the findings in line with the current state; no change when already in line.

    Only a revocation's review follows the state of the world; the other causes record what
    the change did at the time it was made."""
    if review.revocation_id is None or review.user_id is None:
        return RefreshResult()
    now = now or utcnow()
    revocation = session.get_one(Revocation, review.revocation_id)
    user = session.get_one(User, review.user_id)
    organisation = session.get_one(Organisation, review.organisation_id)
    existing = {(f.kind, f.subject_id): f for f in review.findings}
    result = RefreshResult()
    desired = _desired_findings(session, organisation, user, revocation, actor, now, result)
    interval = escalation_interval(organisation)
    for item in desired:
        finding = existing.pop((item.kind, item.subject_id), None)
        if finding is None:
            result.added.append(_add_finding(session, review, item, now, interval))
        elif _update_finding(finding, item, now, interval):
            result.updated.append(finding)
    for finding in existing.values():
        if finding.state is FindingState.OPEN and finding.kind not in EVIDENCE_KINDS:
            _set_state(finding, FindingState.RESOLVED, "sweep", now, "the cause has gone")
            result.cleared.append(finding)
    if result.changed:
        review.last_swept_at = now
        if review.status is ReviewStatus.RESOLVED and any(
            f.state is FindingState.OPEN for f in review.findings
        ):
            review.status, review.resolved_at, review.resolved_by = ReviewStatus.OPEN, None, None
        session.flush()
    if announce and result.changed:
        _record_refresh(session, review, actor, result)
        urgent = [
            f
            for f in result.added + result.updated
            if f.severity is Severity.URGENT and f.state is FindingState.OPEN
        ]
        if urgent:
            _notify_review(session, review, EVENT_URGENT, urgent, audience=("managers", "admins"))
        if review.status is ReviewStatus.OPEN and not any(
            f.state is FindingState.OPEN for f in review.findings
        ):
            _close(session, review, actor=actor, now=now, announce=True)
    return result


def follow_findings(
    session: Session,
    *,
    review: RevocationReview,
    added: list[Desired],
    cleared: list[ReviewFinding],
    actor: Actor,
    note: str,
) -> RefreshResult:
    """An access review brought in line with what its cause touches now: `added` become open
    findings, the open ones of `cleared` are resolved with `note`; audited `review.updated`
    (urgent additions alerted) when anything changed."""
    now = utcnow()
    interval = escalation_interval(session.get_one(Organisation, review.organisation_id))
    result = RefreshResult()
    result.added = [_add_finding(session, review, item, now, interval) for item in added]
    for finding in cleared:
        if finding.state is FindingState.OPEN:
            _set_state(finding, FindingState.RESOLVED, str(actor), now, note)
            result.cleared.append(finding)
    if not result.changed:
        return result
    session.flush()
    review.last_swept_at = now
    _record_refresh(session, review, actor, result)
    urgent = [f for f in result.added if f.severity is Severity.URGENT]
    if urgent:
        _notify_review(session, review, EVENT_URGENT, urgent, audience=("managers", "admins"))
    if not any(f.state is FindingState.OPEN for f in review.findings):
        _close(session, review, actor=actor, now=now, announce=True)
    return result


def used_after_revocation(session: Session, revocation_id: uuid.UUID) -> list[uuid.UUID]:
    """The keys this revocation disabled that carry an open "used after revocation" finding:
    a reactivation re-enables them only when an admin says so."""
    return sorted(
        session.scalars(
            select(VirtualApiKey.id)
            .join(ReviewFinding, ReviewFinding.subject_id == VirtualApiKey.id)
            .join(RevocationReview, RevocationReview.id == ReviewFinding.review_id)
            .where(
                VirtualApiKey.revoked_by_revocation_id == revocation_id,
                RevocationReview.revocation_id == revocation_id,
                ReviewFinding.kind == KIND_USAGE,
                ReviewFinding.state == FindingState.OPEN,
            )
        ).all()
    )


def latest_review_about(session: Session, subject_id: uuid.UUID) -> RevocationReview | None:
    """The newest review with a finding about this key, budget, quota or team."""
    return session.scalar(
        select(RevocationReview)
        .join(ReviewFinding, ReviewFinding.review_id == RevocationReview.id)
        .where(ReviewFinding.subject_id == subject_id)
        .order_by(RevocationReview.created_at.desc())
        .limit(1)
    )


def review_of(session: Session, revocation_id: uuid.UUID) -> RevocationReview | None:
    return session.scalar(
        select(RevocationReview).where(RevocationReview.revocation_id == revocation_id)
    )


def escalation_interval(organisation: Organisation) -> timedelta:
    return timedelta(minutes=max(1, organisation.settings.review_escalation_minutes))


def _desired_findings(
    session: Session,
    organisation: Organisation,
    user: User,
    revocation: Revocation,
    actor: Actor,
    now: datetime,
    result: RefreshResult,
) -> list[Desired]:
    scope = key_scope.revocation(organisation.settings, user.id)
    desired = [item for group in scope.keys for item in _key_findings(session, group, revocation)]
    to_revoke = [d for d in desired if d.action == "revoke_now"]
    if to_revoke and user.status is UserStatus.REVOKED:
        revoked = key_revocation.revoke_keys(
            session,
            organisation_id=user.organisation_id,
            scope=VirtualApiKey.id.in_([d.subject_id for d in to_revoke]),
            actor=actor,
            reason="review",
            revocation_id=revocation.id,
            audit_detail={"user_id": str(user.id), "by": "revocation review"},
        )
        result.revoked_key_ids.extend(str(key_id) for key_id in revoked)
        for item in to_revoke:
            if item.subject_id in revoked:
                item.action, item.action_taken = "revoked", True
                item.invalidation_status = INVALIDATION_PENDING
                item.invalidation_requested_at = now
                item.store_acknowledged_at = None if is_bridged(session) else now
                item.severity = Severity.MEDIUM
            else:
                item.action = "revoke"
    else:
        for item in to_revoke:
            item.action = "revoke"
    desired += _token_findings(session, user, revocation, actor)
    desired += _last_manager_findings(session, user)
    desired += _ownership_findings(session, scope)
    desired += _usage_findings(session, user, revocation)
    return desired


# What a finding proposes for a key that policy holds instead of revoking.
HELD_PROPOSAL = {key_scope.KIND_USER_KEY: "revoke"}
KEY_SEVERITY = {key_scope.KIND_USER_KEY: Severity.HIGH}
# A leaver's key that policy held and that cannot wait for the next reminder: an organisation
# key serves the whole organisation and its creator has gone.
HELD_AT_REVOCATION_SEVERITY = {key_scope.KIND_ORG_KEY: Severity.URGENT}


def _key_findings(
    session: Session, group: key_scope.KeyGroup, revocation: Revocation
) -> list[Desired]:
    # Lock the keys first, then read in a fresh statement: a concurrent gateway
    # acknowledgement (record_invalidation) either sees these findings or is seen here.
    key_revocation.lock_keys(session, group.condition)
    keys = session.execute(
        select(VirtualApiKey, KeyInvalidation.acknowledged_at)
        .outerjoin(KeyInvalidation, KeyInvalidation.key_id == VirtualApiKey.id)
        .where(group.condition, or_(VirtualApiKey.revoked.is_(False), _stamped_by(revocation)))
        .order_by(VirtualApiKey.created_at)
        .execution_options(populate_existing=True)
    ).all()
    desired = []
    for key, acknowledged_at in keys:
        item = key_finding(group.kind, key)
        item.action = HELD_PROPOSAL.get(group.kind, key_scope.HOLD)
        if key.revoked:
            _mark_revoked(item, key, acknowledged_at)
            item.store_acknowledged_at = store_acknowledged_at(session, key)
            _carry_store_answers(session, item, key)
        elif group.action == key_scope.REVOKE:
            item.action = "revoke_now"
        else:
            item.severity = HELD_AT_REVOCATION_SEVERITY.get(group.kind, item.severity)
        desired.append(item)
    return desired


def _carry_store_answers(session: Session, item: Desired, key: VirtualApiKey) -> None:
    """What the store and the gateway answered about the key's revocation before this finding
    existed: kept on the command, copied here (the gateway's proof, a store's 404)."""
    command = latest_revoke_command(session, key) if is_bridged(session) else None
    if command is not None:
        item.gateway_proof = command.gateway_proof
        item.detail.update(store_facts(command))


def key_finding(kind: str, key: VirtualApiKey) -> Desired:
    """A finding about one key, before anyone acted on it."""
    return Desired(
        kind=kind,
        subject_type="api_key",
        subject_id=key.id,
        severity=KEY_SEVERITY.get(kind, Severity.MEDIUM),
        action=key_scope.HOLD,
        team_id=key.owner_team_id,
        detail={"name": key.name, "masked_value": key.masked_value, "key_type": key.key_type},
    )


def _mark_revoked(item: Desired, key: VirtualApiKey, acknowledged_at: datetime | None) -> None:
    item.action, item.action_taken, item.severity = "revoked", True, Severity.MEDIUM
    acked = bool(
        acknowledged_at is not None
        and key.revoked_at is not None
        and acknowledged_at >= key.revoked_at
    )
    item.invalidation_status = INVALIDATION_ACKNOWLEDGED if acked else INVALIDATION_PENDING
    item.invalidated_at = acknowledged_at if acked else None
    item.invalidation_requested_at = None if acked else key.revoked_at


def _stamped_by(revocation: Revocation) -> Any:
    return VirtualApiKey.revoked_by_revocation_id == revocation.id


def _token_findings(
    session: Session, user: User, revocation: Revocation, actor: Actor
) -> list[Desired]:
    """The person's admin-API tokens: those the revocation revoked, and any still live (a
    revoked person's are revoked here). Reactivation brings none back."""
    if user.status is UserStatus.REVOKED:
        tokens.revoke_person_tokens(
            session, user_id=user.id, revocation_id=revocation.id, actor=actor
        )
    held = session.scalars(
        select(ApiToken)
        .where(
            key_scope.admin_tokens_of(user.id),
            or_(
                ApiToken.revoked_by_revocation_id == revocation.id,
                ApiToken.revoked_at.is_(None),
            ),
        )
        .order_by(ApiToken.created_at)
    ).all()
    return [_token_finding(token) for token in held]


def _token_finding(token: ApiToken) -> Desired:
    revoked = token.revoked_at is not None
    return Desired(
        kind=KIND_ADMIN_TOKEN,
        subject_type="api_token",
        subject_id=token.id,
        severity=Severity.MEDIUM if revoked else Severity.HIGH,
        action="revoked" if revoked else "revoke",
        action_taken=revoked,
        detail={
            "name": token.name,
            "prefix": token.prefix,
            "scope": token.scope.value,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        },
    )


def other_active_managers_of_team(user: User) -> ScalarSelect[int]:
    """How many active managers the team (`Team` in the enclosing query) has besides this
    person: none makes them its last manager, whom a revocation leaves it without."""
    other = TeamMembership.__table__.alias("other")
    other_user = User.__table__.alias("other_user")
    return (
        select(func.count())
        .select_from(other.join(other_user, other_user.c.id == other.c.user_id))
        .where(
            other.c.team_id == Team.id,
            other.c.role == TeamRole.MANAGER.value,
            other.c.user_id != user.id,
            other_user.c.status == UserStatus.ACTIVE.value,
        )
        .scalar_subquery()
    )


def _last_manager_findings(session: Session, user: User) -> list[Desired]:
    other_active_managers = other_active_managers_of_team(user)
    teams = session.scalars(
        select(Team)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(
            TeamMembership.user_id == user.id,
            TeamMembership.role == TeamRole.MANAGER,
            other_active_managers == 0,
        )
        .order_by(Team.name_key)
    )
    return [
        Desired(
            kind=KIND_LAST_MANAGER,
            subject_type="team",
            subject_id=team.id,
            severity=Severity.HIGH,
            action="appoint_manager",
            team_id=team.id,
            detail={"name": team.name},
        )
        for team in teams
    ]


def _ownership_findings(session: Session, scope: key_scope.Scope) -> list[Desired]:
    """Budgets and quotas in scope: flagged for transfer to a new owner."""
    rows: list[Budget | Quota] = [*key_scope.budgets(session, scope)]
    rows += key_scope.quotas(session, scope)
    return [ownership_finding(row) for row in rows]


def ownership_finding(row: Budget | Quota) -> Desired:
    detail: dict[str, Any] = {"name": row.name, "window": row.window}
    if isinstance(row, Budget):
        kind = KIND_BUDGET
        detail.update(amount=str(row.amount), currency=row.currency)
    else:
        kind = KIND_QUOTA
        detail.update(metric=row.metric, limit=row.limit)
    return Desired(
        kind=kind,
        subject_type=kind,
        subject_id=row.id,
        severity=Severity.MEDIUM,
        action="transfer",
        team_id=row.owner_id if row.owner_type is OwnerType.TEAM else None,
        detail=detail,
    )


def _usage_findings(session: Session, user: User, revocation: Revocation) -> list[Desired]:
    """Gateway activity after the revocation by the person or their keys: the urgent case."""
    their_keys = select(VirtualApiKey.id).where(key_scope.held_by(user.id))
    rows = session.execute(
        select(
            UsageRecord.api_key_id,
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.cost), 0),
            func.min(UsageRecord.occurred_at),
            func.max(UsageRecord.occurred_at),
        )
        .where(
            UsageRecord.occurred_at > revocation.revoked_at,
            or_(UsageRecord.user_id == user.id, UsageRecord.api_key_id.in_(their_keys)),
        )
        .group_by(UsageRecord.api_key_id)
    ).all()
    if not rows:
        return []
    keys = {
        key.id: key
        for key in session.scalars(
            select(VirtualApiKey).where(
                VirtualApiKey.id.in_([r[0] for r in rows if r[0] is not None])
            )
        )
    }
    found = []
    for key_id, count, cost, first, last in rows:
        key = keys.get(key_id) if key_id else None
        last_seen = _aware(last)
        found.append(
            Desired(
                kind=KIND_USAGE,
                subject_type="api_key" if key_id else "user",
                subject_id=key_id or user.id,
                severity=Severity.URGENT,
                action="revoke_key" if key is not None and not key.revoked else "investigate",
                team_id=key.owner_team_id if key else None,
                detail={
                    "name": key.name if key else user.email,
                    "requests": int(count),
                    "cost": str(Decimal(cost)),
                    "first_seen": _aware(first).isoformat(),
                    "last_seen": last_seen.isoformat(),
                    "key_still_active": bool(key is not None and not key.revoked),
                },
                observed_until=last_seen,
            )
        )
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _add_finding(
    session: Session,
    review: RevocationReview,
    item: Desired,
    now: datetime,
    interval: timedelta,
) -> ReviewFinding:
    finding = ReviewFinding(
        review_id=review.id,
        kind=item.kind,
        subject_type=item.subject_type,
        subject_id=item.subject_id,
        severity=item.severity,
        action=item.action,
        action_taken=item.action_taken,
        team_id=item.team_id,
        detail=item.detail,
        invalidation_status=item.invalidation_status,
        invalidated_at=item.invalidated_at,
        invalidation_requested_at=item.invalidation_requested_at,
        store_acknowledged_at=item.store_acknowledged_at,
        gateway_proof=item.gateway_proof,
        observed_until=item.observed_until,
        last_notified_at=now,
    )
    if item.action_taken and item.invalidation_status != INVALIDATION_PENDING:
        _set_state(finding, FindingState.RESOLVED, POLICY, now, f"{item.action} by policy")
    elif item.action_taken:
        # Revoked, but not done until the gateway forgets the key: open (pending) until then.
        # Nobody has a decision to make: the cut-off's deadline alarm escalates, not reminders.
        finding.state = FindingState.OPEN
    else:
        finding.state = FindingState.OPEN
        finding.next_escalation_at = now + interval
    review.findings.append(finding)
    session.add(finding)
    return finding


def _update_finding(
    finding: ReviewFinding, item: Desired, now: datetime, interval: timedelta
) -> bool:
    """Carry new facts into an existing finding; True when something changed."""
    changed = False
    if item.action_taken and not finding.action_taken:
        finding.action, finding.action_taken = item.action, True
        finding.invalidation_status = item.invalidation_status
        finding.invalidation_requested_at = item.invalidation_requested_at
        finding.store_acknowledged_at = item.store_acknowledged_at
        if finding.state is FindingState.OPEN and item.invalidation_status != INVALIDATION_PENDING:
            _set_state(finding, FindingState.RESOLVED, POLICY, now, f"{item.action} by policy")
        elif finding.state is FindingState.OPEN:
            finding.next_escalation_at = None  # the cut-off's deadline alarm takes over
        changed = True
    elif (
        finding.action_taken
        and finding.invalidation_status == INVALIDATION_PENDING
        and item.invalidation_status == INVALIDATION_ACKNOWLEDGED
    ):
        # The gateway's acknowledgement was recorded before this finding existed to be marked.
        _acknowledged(finding, item.invalidated_at or now)
        changed = True
    if (
        item.kind == KIND_USAGE
        and item.observed_until
        and (finding.observed_until is None or _aware(finding.observed_until) < item.observed_until)
    ):
        finding.detail = item.detail
        finding.action = item.action
        finding.observed_until = item.observed_until
        if finding.state is not FindingState.OPEN:
            # Used again after someone closed it: it is open and urgent once more.
            finding.state = FindingState.OPEN
            finding.resolved_at = finding.resolved_by = finding.resolution = None
        finding.acknowledged_at = finding.acknowledged_by = None
        finding.escalation_level = 0
        finding.next_escalation_at = now + interval
        changed = True
    return changed


def _record_refresh(
    session: Session, review: RevocationReview, actor: Actor, result: RefreshResult
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.updated",
        target_type="revocation_review",
        after={
            "added": [_finding_ref(f) for f in result.added],
            "updated": [_finding_ref(f) for f in result.updated],
            "cleared": [_finding_ref(f) for f in result.cleared],
            "keys_revoked": result.revoked_key_ids,
        },
    )


def _finding_ref(finding: ReviewFinding) -> dict[str, str]:
    return {"id": str(finding.id), "kind": finding.kind, "subject_id": str(finding.subject_id)}


# --- gateway acknowledgements -----------------------------------------------------------


def record_invalidation(
    session: Session,
    *,
    key_ids: list[uuid.UUID],
    reason: str,
    at: datetime | None = None,
    called_at: datetime | None = None,
) -> list[cutoffs.Clock]:
    """The gateway acknowledged forgetting these keys (in a call made at `called_at`): remember
    it, close their cut-offs, and resolve the findings that waited for it. The time-to-kill
    clocks of the revocations this completed."""
    at = at or utcnow()
    called_at = called_at or at
    keys = _locked_keys(session, key_ids)
    commands = (
        latest_revoke_commands(session, [key.id for key in keys if key.revoked])
        if is_bridged(session)
        else {}
    )
    completed = [key for key in keys if _completes_revocation(key, commands.get(key.id), called_at)]
    # A revoked key's last acknowledgement is one that counts for its revocation (a review
    # opened later reads it: _mark_revoked).
    counted = [key.id for key in keys if not key.revoked] + [key.id for key in completed]
    _remember_invalidation(session, key_ids=counted, reason=reason, at=at)
    clocks = cutoffs.acknowledge(session, key_ids=key_ids, called_at=called_at, at=at)
    _audit_forgotten(session, key_ids=key_ids, reason=reason, at=at)
    findings = list(
        session.scalars(
            _findings_of_current_revocation([key.id for key in completed]).where(
                ReviewFinding.invalidation_status == INVALIDATION_PENDING
            )
        )
    )
    for finding in findings:
        _acknowledged(finding, at)
    session.flush()
    for review in {finding.review for finding in findings}:
        if review.status is ReviewStatus.OPEN and not has_open_findings(session, review):
            _close(session, review, actor=cutoffs.GATEWAY_ACTOR, now=at, announce=True)
    return clocks


def _completes_revocation(
    key: VirtualApiKey, command: StoreCommand | None, called_at: datetime
) -> bool:
    """Whether a gateway call made at `called_at` completes the key's current revocation: it
    came after the store settled the revocation's command (embedded, after the revoke
    itself). A call before it (a re-invalidation planned for an older command of the key, while
    the store has not applied the new revoke) leaves the gateway free to re-read the key
    active from the store. `command`: the key's latest revoke command (bridged)."""
    if not key.revoked or key.revoked_at is None:
        return False
    if command is None:  # embedded, or revoked before commands were kept (0029)
        return _aware(key.revoked_at) <= called_at
    settled_at = command.acknowledged_at or command.abandoned_at
    return settled_at is not None and _aware(settled_at) <= called_at


def _findings_of_current_revocation(key_ids: list[uuid.UUID]) -> Select[ReviewFinding]:
    """The key findings of the review whose revocation revoked these keys now (reviews without
    a revocation: keys without one), not of a revocation undone since or of a newer one."""
    return (
        select(ReviewFinding)
        .join(RevocationReview, RevocationReview.id == ReviewFinding.review_id)
        .join(VirtualApiKey, VirtualApiKey.id == ReviewFinding.subject_id)
        .where(
            ReviewFinding.subject_id.in_(key_ids),
            ReviewFinding.kind.in_(INVALIDATED_KINDS),
            RevocationReview.revocation_id.is_not_distinct_from(
                VirtualApiKey.revoked_by_revocation_id
            ),
        )
    )


def _findings_answered_by(session: Session, commands: list[StoreCommand]) -> list[ReviewFinding]:
    """The findings a store command's answer (the store's, the gateway's proof) belongs to:
    those of the review whose revocation issued it, i.e. the key's current revoke command.
    An older command's late answer, or a restore's, is no finding's (it stays on the command,
    audited). The keys are locked first, like record_invalidation, so a review being opened at
    the same time either sees the answer (_carry_store_answers) or its findings are seen here."""
    key_ids = sorted({command.subject_id for command in commands})
    if not key_ids:
        return []
    keys = _locked_keys(session, key_ids)
    answered = {command.id for command in commands}
    latest = latest_revoke_commands(session, [key.id for key in keys if key.revoked])
    current = [key_id for key_id, command in latest.items() if command.id in answered]
    if not current:
        return []
    return list(session.scalars(_findings_of_current_revocation(current)))


def _locked_keys(session: Session, key_ids: list[uuid.UUID]) -> list[VirtualApiKey]:
    """The keys, locked in a revocation's lock order and read afresh under the lock: a review
    being opened at the same time (_key_findings) either sees what the caller writes next, or
    its findings are seen by the caller."""
    key_revocation.lock_keys(session, VirtualApiKey.id.in_(key_ids))
    return list(
        session.scalars(
            select(VirtualApiKey)
            .where(VirtualApiKey.id.in_(key_ids))
            .execution_options(populate_existing=True)
        )
    )


def _remember_invalidation(
    session: Session, *, key_ids: list[uuid.UUID], reason: str, at: datetime
) -> None:
    known = set(
        session.scalars(select(KeyInvalidation.key_id).where(KeyInvalidation.key_id.in_(key_ids)))
    )
    if known:
        session.execute(
            update(KeyInvalidation)
            .where(KeyInvalidation.key_id.in_(known))
            .values(acknowledged_at=at, reason=reason[:40])
        )
    session.add_all(
        KeyInvalidation(key_id=key_id, acknowledged_at=at, reason=reason[:40])
        for key_id in key_ids
        if key_id not in known
    )


def _audit_forgotten(
    session: Session, *, key_ids: list[uuid.UUID], reason: str, at: datetime
) -> None:
    """The gateway's acknowledgement ends a key's cut-off (the revocation done there): an audit
    event for each key, as for the store's acknowledgement before it; a leaver's thousand keys
    in one INSERT."""
    keys = session.execute(
        select(VirtualApiKey.id, VirtualApiKey.organisation_id)
        .where(VirtualApiKey.id.in_(key_ids))
        .order_by(VirtualApiKey.id)
    ).all()
    audit.record_each(
        session,
        actor=cutoffs.GATEWAY_ACTOR,
        action="api_key.gateway_invalidated",
        target_type="api_key",
        subjects=keys,
        after={"reason": reason, "acknowledged_at": at.isoformat()},
    )


def _acknowledged(finding: ReviewFinding, at: datetime) -> None:
    """The gateway forgot the finding's key: a revocation the policy made is now done."""
    finding.invalidation_status, finding.invalidated_at = INVALIDATION_ACKNOWLEDGED, at
    if finding.action_taken and finding.state is FindingState.OPEN:
        note = f"{finding.action} by policy; the gateway acknowledged"
        _set_state(finding, FindingState.RESOLVED, POLICY, at, note)


def record_on_command_findings(
    session: Session, *, commands: list[StoreCommand], **values: Any
) -> None:
    """Set these columns (the store's acknowledgement, the gateway's proof) on the findings
    these commands' answers belong to (_findings_answered_by)."""
    now = utcnow()
    for finding in _findings_answered_by(session, commands):
        for name, value in values.items():
            setattr(finding, name, value)
        finding.updated_at = now


def note_on_command_findings(
    session: Session, *, commands: list[StoreCommand], **facts: Any
) -> None:
    """Add these facts (what the store said) to the detail of the findings these commands'
    answers belong to (_findings_answered_by)."""
    now = utcnow()
    plain = {name: v.isoformat() if isinstance(v, datetime) else v for name, v in facts.items()}
    for finding in _findings_answered_by(session, commands):
        finding.detail = {**finding.detail, **plain}
        finding.updated_at = now


def raise_urgent_finding(
    session: Session,
    *,
    review: RevocationReview,
    kind: str,
    subject_type: str,
    subject_id: uuid.UUID,
    detail: dict[str, Any],
    actor: Actor,
) -> ReviewFinding:
    """Open (or reopen) a finding that cannot wait, and alert managers and admins now."""
    now = utcnow()
    organisation = session.get_one(Organisation, review.organisation_id)
    finding = session.scalar(
        select(ReviewFinding).where(
            ReviewFinding.review_id == review.id,
            ReviewFinding.kind == kind,
            ReviewFinding.subject_id == subject_id,
        )
    )
    if finding is None:
        item = Desired(kind, subject_type, subject_id, Severity.URGENT, "investigate")
        finding = _add_finding(session, review, item, now, escalation_interval(organisation))
    finding.detail = detail
    if finding.state is not FindingState.OPEN:
        finding.state = FindingState.OPEN
        finding.resolved_at = finding.resolved_by = finding.resolution = None
        finding.next_escalation_at = now + escalation_interval(organisation)
    if review.status is ReviewStatus.RESOLVED:
        review.status, review.resolved_at, review.resolved_by = ReviewStatus.OPEN, None, None
    session.flush()
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.urgent_finding",
        target_type="revocation_review",
        after={"finding": _finding_ref(finding), "detail": detail},
    )
    _notify_review(session, review, EVENT_URGENT, [finding], audience=("managers", "admins"))
    return finding


# --- decisions on findings --------------------------------------------------------------


def resolve_finding(
    session: Session, *, finding: ReviewFinding, actor: Actor, note: str = ""
) -> ReviewFinding:
    """A person's answer by hand (API, console, CLI)."""
    _read_locked(session, finding)
    _require_answerable_by_hand(session, finding, actor, {"operation": "resolve", "note": note})
    return close_finding(session, finding=finding, actor=actor, note=note)


def close_finding(
    session: Session, *, finding: ReviewFinding, actor: Actor, note: str = ""
) -> ReviewFinding:
    """Resolve a finding as the operation that owns it decided (a campaign's answer, a
    reassignment)."""
    _decide(session, finding, FindingState.RESOLVED, actor, note, "review.finding_resolved")
    return finding


def dismiss_finding(
    session: Session, *, finding: ReviewFinding, actor: Actor, note: str = ""
) -> ReviewFinding:
    _read_locked(session, finding)
    _require_answerable_by_hand(session, finding, actor, {"operation": "dismiss", "note": note})
    _decide(session, finding, FindingState.DISMISSED, actor, note, "review.finding_dismissed")
    return finding


def _read_locked(session: Session, finding: ReviewFinding) -> None:
    """Lock the finding's review and read the finding again: two people deciding findings of
    one review at once take turns, so the later sees the earlier's answer (one decision per
    finding) and whether any finding is left open (the review closes once)."""
    _lock_review(session, finding.review_id)
    session.refresh(finding)


def _lock_review(session: Session, review_id: uuid.UUID) -> None:
    """Lock the review (PostgreSQL) and read it again."""
    _lock(
        session,
        select(RevocationReview)
        .where(RevocationReview.id == review_id)
        .execution_options(populate_existing=True),
    )


def _still_open(session: Session, review: RevocationReview) -> bool:
    """Lock the review, as a person's answer does, and read it and its findings again
    (review.findings are these objects): whether it is still open. An answer given meanwhile
    then stands, and a review that answer closed is not closed again."""
    _lock_review(session, review.id)
    if review.status is not ReviewStatus.OPEN:
        return False
    _findings_read_again(session, review.id)
    return True


def _findings_read_again(session: Session, review_id: uuid.UUID) -> Sequence[ReviewFinding]:
    """A review's findings as they are now (its lock held: nobody answers one meanwhile)."""
    return session.scalars(
        select(ReviewFinding)
        .where(ReviewFinding.review_id == review_id)
        .execution_options(populate_existing=True)
    ).all()


def answerable_by_hand(finding: ReviewFinding) -> bool:
    """Whether a person may resolve, dismiss or reassign the finding as a review's. A
    campaign's findings are answered in the campaign (keep with a reason, rotate or revoke),
    where one answer per finding and the deadline are decided. The console offers those
    buttons, and the API shows `answerable_by_hand`, from this same rule."""
    return finding.review.cause is not ReviewCause.RECERTIFICATION


class AnsweredInCampaign(AuditedRefusal, InvalidTransition):
    """A resolve, dismiss or reassign of a campaign's finding: refused (409) and audited
    `review.finding_answer_refused`; the caller keeps that event (audit.keeping_refusals)."""


def _require_answerable_by_hand(
    session: Session, finding: ReviewFinding, actor: Actor, attempted: dict[str, Any]
) -> None:
    if answerable_by_hand(finding):
        return
    audit.record(
        session,
        actor=actor,
        organisation_id=finding.review.organisation_id,
        action="review.finding_answer_refused",
        target_type="review_finding",
        target_id=finding.id,
        after={
            "review_id": str(finding.review_id),
            "finding": _finding_ref(finding),
            "attempted": attempted,
            "state": finding.state.value,
            "reason": "answered_in_campaign",
        },
    )
    raise AnsweredInCampaign(
        "a recertification finding is answered in its campaign: keep (with a reason), "
        "rotate or revoke",
        state=finding.state.value,
    )


def acknowledge_finding(
    session: Session, *, finding: ReviewFinding, actor: Actor, now: datetime | None = None
) -> bool:
    """Stop the reminders for this finding; False when it was already acknowledged or closed."""
    _read_locked(session, finding)
    return _acknowledge(session, finding=finding, actor=actor, now=now)


def _acknowledge(
    session: Session, *, finding: ReviewFinding, actor: Actor, now: datetime | None = None
) -> bool:
    if finding.state is not FindingState.OPEN or finding.acknowledged_at is not None:
        return False
    finding.acknowledged_at = now or utcnow()
    finding.acknowledged_by = str(actor)
    audit.record(
        session,
        actor=actor,
        organisation_id=finding.review.organisation_id,
        action="review.finding_acknowledged",
        target_type="review_finding",
        target_id=finding.id,
        after={"review_id": str(finding.review_id), "acknowledged_by": str(actor)},
    )
    return True


def acknowledge_review(
    session: Session,
    *,
    review: RevocationReview,
    actor: Actor,
    team_ids: set[uuid.UUID] | None = None,
) -> int:
    """Acknowledge every open finding (or only those of `team_ids`); the count acknowledged.
    The review is locked and its findings read again, as for a single finding."""
    _lock_review(session, review.id)
    findings = _findings_read_again(session, review.id)
    now = utcnow()
    return sum(
        _acknowledge(session, finding=finding, actor=actor, now=now)
        for finding in findings
        if team_ids is None or finding.team_id in team_ids
    )


def reassign_finding(
    session: Session,
    *,
    finding: ReviewFinding,
    actor: Actor,
    to_user: User | None = None,
    to_team: Team | None = None,
    note: str = "",
) -> ReviewFinding:
    """Give the key, budget, quota or team to someone else, and resolve the finding. Not a
    campaign's finding: moving its key would answer it outside the campaign."""
    if (to_user is None) == (to_team is None):
        raise InvalidInput("name exactly one new owner: a user or a team")
    _read_locked(session, finding)
    attempted = {"operation": "reassign", "note": note, "to": _owner_ref(to_user, to_team)}
    _require_answerable_by_hand(session, finding, actor, attempted)
    organisation_id = finding.review.organisation_id
    new_owner = to_user or to_team
    assert new_owner is not None
    if new_owner.organisation_id != organisation_id:
        raise NotFound("new owner not found")
    if to_user is not None and to_user.status is not UserStatus.ACTIVE:
        raise InvalidInput("the new owner must be an ACTIVE user", field="user_id")
    if finding.state is FindingState.DISMISSED:
        raise InvalidTransition("a dismissed finding cannot be reassigned")
    before, after = _transfer(session, finding, to_user, to_team, actor)
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation_id,
        action="review.reassigned",
        target_type=finding.subject_type,
        target_id=finding.subject_id,
        before=before,
        after={**after, "finding_id": str(finding.id), "review_id": str(finding.review_id)},
    )
    finding.detail = {**finding.detail, "reassigned_to": after}
    if finding.state is FindingState.OPEN:
        target = f"user {to_user.email}" if to_user else f"team {to_team.name}"  # type: ignore[union-attr]
        close_finding(session, finding=finding, actor=actor, note=note or f"reassigned to {target}")
    return finding


def _owner_ref(to_user: User | None, to_team: Team | None) -> dict[str, str]:
    if to_user is not None:
        return {"type": "user", "id": str(to_user.id), "email": to_user.email}
    assert to_team is not None
    return {"type": "team", "id": str(to_team.id), "name": to_team.name}


def _transfer(
    session: Session,
    finding: ReviewFinding,
    to_user: User | None,
    to_team: Team | None,
    actor: Actor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    subject = finding.subject_type
    if subject == "api_key":
        key = session.get(VirtualApiKey, finding.subject_id)
        if key is None:
            raise NotFound("the key no longer exists")
        before = {
            "key_type": key.key_type.value,
            "owner_user_id": _str(key.owner_user_id),
            "owner_team_id": _str(key.owner_team_id),
        }
        key_revocation.reassign_key(
            session,
            key=key,
            owner_user_id=to_user.id if to_user else None,
            owner_team_id=key.owner_team_id if to_user else to_team.id,  # type: ignore[union-attr]
            actor=actor,
            reason="reassigned in review",
            audit_detail={"finding_id": str(finding.id)},
            revocation_id=finding.review.revocation_id,
        )
        return before, {
            "key_type": key.key_type.value,
            "owner_user_id": _str(key.owner_user_id),
            "owner_team_id": _str(key.owner_team_id),
        }
    if subject in (KIND_BUDGET, KIND_QUOTA):
        row: Budget | Quota | None = (
            session.get(Budget, finding.subject_id)
            if subject == KIND_BUDGET
            else session.get(Quota, finding.subject_id)
        )
        if row is None:
            raise NotFound(f"the {subject} no longer exists")
        before = {"owner_type": row.owner_type.value, "owner_id": str(row.owner_id)}
        owner_type, owner_id = (
            (OwnerType.USER, to_user.id) if to_user else (OwnerType.TEAM, to_team.id)  # type: ignore[union-attr]
        )
        row.owner_type, row.owner_id, row.updated_at = owner_type, owner_id, utcnow()
        return before, {"owner_type": owner_type.value, "owner_id": str(owner_id)}
    if subject == "team":
        if to_user is None:
            raise InvalidInput("a team's new manager must be a user", field="user_id")
        from models.actions.teams import add_to_team, get_team

        team = get_team(session, finding.review.organisation_id, finding.subject_id)
        add_to_team(session, team=team, user=to_user, role=TeamRole.MANAGER, actor=actor)
        return {"manager": None}, {"manager_user_id": str(to_user.id)}
    raise InvalidInput(f"a {finding.kind} finding has nothing to reassign")


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


def _decide(
    session: Session,
    finding: ReviewFinding,
    state: FindingState,
    actor: Actor,
    note: str,
    action: str,
) -> None:
    if finding.state is not FindingState.OPEN:
        raise InvalidTransition(
            f"the finding is already {finding.state}", state=finding.state.value
        )
    now = utcnow()
    _set_state(finding, state, str(actor), now, note.strip()[:2000] or None)
    audit.record(
        session,
        actor=actor,
        organisation_id=finding.review.organisation_id,
        action=action,
        target_type="review_finding",
        target_id=finding.id,
        before={"state": FindingState.OPEN.value},
        after={
            "state": state.value,
            "note": finding.resolution,
            "review_id": str(finding.review_id),
        },
    )
    review = finding.review
    if review.status is ReviewStatus.OPEN and not has_open_findings(session, review):
        _close(session, review, actor=actor, now=now, announce=True)


def resolve_findings(
    session: Session, *, findings: list[ReviewFinding], actor: Actor, note: str
) -> None:
    """Resolve these open findings of one review at once: one audit event, then the review
    closes when nothing is left open."""
    if not findings:
        return
    now = utcnow()
    review = findings[0].review
    for finding in findings:
        _set_state(finding, FindingState.RESOLVED, str(actor), now, note)
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.findings_resolved",
        target_type="revocation_review",
        after={"findings": [_finding_ref(f) for f in findings], "note": note},
    )
    if review.status is ReviewStatus.OPEN and not has_open_findings(session, review):
        _close(session, review, actor=actor, now=now, announce=True)


def close_if_settled(
    session: Session, *, review: RevocationReview, actor: Actor, now: datetime
) -> None:
    """Close an open review whose findings were all settled by a bulk change."""
    if review.status is ReviewStatus.OPEN and not has_open_findings(session, review):
        _close(session, review, actor=actor, now=now, announce=True)


def close_empty_review(session: Session, *, review: RevocationReview, now: datetime) -> None:
    """A review born with nothing to decide is resolved at once, and says so."""
    _close(session, review, actor=Actor.system(POLICY), now=now, announce=False)


def has_open_findings(session: Session, review: RevocationReview) -> bool:
    """Asked of the database: a campaign's review holds too many findings to load."""
    session.flush()
    return bool(
        session.scalar(
            select(ReviewFinding.id)
            .where(ReviewFinding.review_id == review.id, ReviewFinding.state == FindingState.OPEN)
            .limit(1)
        )
    )


def _set_state(
    finding: ReviewFinding, state: FindingState, by: str, now: datetime, note: str | None
) -> None:
    finding.state = state
    finding.resolved_by = by
    finding.resolved_at = now
    finding.resolution = note
    finding.next_escalation_at = None


def _close(
    session: Session, review: RevocationReview, *, actor: Actor, now: datetime, announce: bool
) -> None:
    review.status = ReviewStatus.RESOLVED
    review.resolved_at = now
    review.resolved_by = str(actor)
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.resolved",
        target_type="revocation_review",
        before={"status": ReviewStatus.OPEN.value},
        after={"status": ReviewStatus.RESOLVED.value},
    )
    if announce:
        _notify_review(session, review, EVENT_RESOLVED, [], audience=("managers", "admins"))


def close_undone_review(
    session: Session, *, review: RevocationReview, actor: Actor, now: datetime | None = None
) -> bool:
    """The person was reactivated: nothing left to decide; dismiss what is still open."""
    if not _still_open(session, review):
        return False
    now = now or utcnow()
    _dismiss_open(review, actor, now, "user reactivated")
    _close(session, review, actor=actor, now=now, announce=True)
    return True


def open_departure_review(session: Session, user: User) -> RevocationReview | None:
    """The person's departure review still open, if any (one per departure)."""
    return session.scalar(
        select(RevocationReview)
        .where(
            RevocationReview.organisation_id == user.organisation_id,
            RevocationReview.cause == ReviewCause.DEPARTURE,
            RevocationReview.status == ReviewStatus.OPEN,
            RevocationReview.user_id == user.id,
        )
        .order_by(RevocationReview.created_at.desc())
        .limit(1)
    )


def supersede_departure_review(
    session: Session, *, user: User, actor: Actor, note: str, announce: bool
) -> RevocationReview | None:
    """The person's departure is off (the date cleared or moved away), or their revocation's
    review now lists what it did: the departure review closes, its open findings dismissed
    with `note`, so no finding is asked twice. Audited `review.superseded`."""
    review = open_departure_review(session, user)
    if review is None or not _still_open(session, review):
        return None
    now = utcnow()
    dismissed = _dismiss_open(review, actor, now, note)
    audit.record_change(
        session,
        actor=actor,
        subject=review,
        action="review.superseded",
        target_type="revocation_review",
        after={"note": note, "findings_dismissed": [_finding_ref(f) for f in dismissed]},
    )
    _close(session, review, actor=actor, now=now, announce=announce)
    return review


def _dismiss_open(
    review: RevocationReview, actor: Actor, now: datetime, note: str
) -> list[ReviewFinding]:
    still_open = [f for f in review.findings if f.state is FindingState.OPEN]
    for finding in still_open:
        _set_state(finding, FindingState.DISMISSED, str(actor), now, note)
    return still_open


# --- escalation -------------------------------------------------------------------------


def escalate_due(session: Session, *, actor: Actor, now: datetime | None = None) -> int:
    """Re-notify unacknowledged open findings whose time has come, one level up; the count."""
    now = now or utcnow()
    query = (
        select(ReviewFinding)
        .join(RevocationReview, RevocationReview.id == ReviewFinding.review_id)
        .where(
            ReviewFinding.state == FindingState.OPEN,
            ReviewFinding.acknowledged_at.is_(None),
            ReviewFinding.next_escalation_at <= now,
            RevocationReview.status == ReviewStatus.OPEN,
        )
        .order_by(ReviewFinding.review_id)
        .limit(5000)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=ReviewFinding, skip_locked=True)
    by_review: dict[uuid.UUID, list[ReviewFinding]] = defaultdict(list)
    for finding in session.scalars(query):
        by_review[finding.review_id].append(finding)
    for findings in by_review.values():
        review = findings[0].review
        organisation = session.get_one(Organisation, review.organisation_id)
        interval = escalation_interval(organisation)
        by_level: dict[int, list[ReviewFinding]] = defaultdict(list)
        for finding in findings:
            finding.escalation_level = min(finding.escalation_level + 1, LEVEL_ADMINS)
            finding.last_notified_at = now
            finding.next_escalation_at = now + interval
            by_level[finding.escalation_level].append(finding)
        for level, group in sorted(by_level.items()):
            audience = {
                LEVEL_OWNER: ("owner",),
                LEVEL_MANAGERS: ("managers",),
                LEVEL_ADMINS: ("admins",),
            }[level]
            _notify_review(session, review, EVENT_ESCALATED, group, audience=audience, level=level)
        audit.record_change(
            session,
            actor=actor,
            subject=review,
            action="review.escalated",
            target_type="revocation_review",
            after={"findings": [_finding_ref(f) for f in findings]},
        )
    return sum(len(group) for group in by_review.values())


# --- notifications ----------------------------------------------------------------------


def _notify_review(
    session: Session,
    review: RevocationReview,
    event: str,
    findings: list[ReviewFinding],
    *,
    audience: tuple[str, ...],
    level: int | None = None,
) -> None:
    user = session.get(User, review.user_id) if review.user_id else None
    narrowed = set()
    if findings and event in (EVENT_ESCALATED, EVENT_URGENT):
        narrowed = {f.team_id for f in findings if f.team_id}
    team_ids = narrowed or affected_team_ids(session, review)
    person = user.id if user else None
    recipients: list[uuid.UUID] = []
    if "owner" in audience and user is not None:
        recipients.append(user.id)
    # A campaign's findings each have their own owner.
    owners = [f.owner_user_id for f in findings if f.owner_user_id] if "owner" in audience else []
    recipients += owners
    # A review about no person (a deleted team) is owned by the team's managers.
    if "managers" in audience or ("owner" in audience and user is None and not owners):
        recipients += team_manager_ids(session, team_ids, exclude=person)
        recipients += _former_managers(session, review, exclude=person)
    if "admins" in audience:
        recipients += admin_ids(session, review.organisation_id, exclude=person)
    payload: dict[str, Any] = {
        "review_id": str(review.id),
        "status": review.status.value,
        "cause": review.cause.value,
        "user": {"id": str(user.id), "email": user.email, "name": user.name} if user else None,
        "revocation": _revocation_payload(session, review),
        "team": _team_payload(review),
        "message": cause_message(review, user),
        "counts": _counts(session, review),
        "findings": [finding_summary(f) for f in findings[:MAX_FINDINGS_IN_PAYLOAD]],
        "findings_total": len(findings),
    }
    if level is not None:
        payload["escalation_level"] = level
        payload["escalated_to"] = audience[0]
    notify(
        session,
        organisation_id=review.organisation_id,
        event=event,
        payload=payload,
        recipient_user_ids=list(dict.fromkeys(recipients)),
    )


def _revocation_payload(session: Session, review: RevocationReview) -> dict[str, Any] | None:
    if review.revocation_id is None:
        return None
    revocation = session.get_one(Revocation, review.revocation_id)
    return {
        "id": str(revocation.id),
        "source": revocation.source.value,
        "actor": revocation.actor,
        "reason": revocation.reason,
        "revoked_at": _aware(revocation.revoked_at).isoformat(),
    }


def _team_payload(review: RevocationReview) -> dict[str, Any] | None:
    if review.team_id is None:
        return None
    return {"id": str(review.team_id), "name": review.context.get("team_name", "")}


CAUSE_MESSAGES = {
    ReviewCause.TEAM_DELETED: "Team {team} was deleted",
    ReviewCause.MANAGER_ROLE_LOST: "{person} no longer manages team {team}",
    ReviewCause.LEFT_TEAM: "{person} left team {team}",
    ReviewCause.ORG_ROLE_DROPPED: "{person}'s organisation role dropped from {before} to {after}",
    ReviewCause.IDENTITY_CHANGED: (
        "{person} was relinked to a new directory entry ({previous} -> {current}): "
        "check it is the same person"
    ),
    ReviewCause.KEY_STILL_ACCEPTED: "The gateway still accepts a revoked key",
    ReviewCause.RECERTIFICATION: (
        "Key recertification: confirm (keep, with a reason), rotate or revoke each key "
        "by {deadline}"
    ),
    ReviewCause.DEPARTURE: (
        "{person}'s access ends at {ends}: hand over what they leave behind before then"
    ),
}


def cause_message(review: RevocationReview, user: User | None) -> str:
    """One line saying what changed, for notifications; empty for a revocation."""
    template = CAUSE_MESSAGES.get(review.cause)
    if template is None:
        return ""
    context = review.context
    return template.format(
        person=user.email if user else "someone",
        team=context.get("team_name", ""),
        before=context.get("role_before", ""),
        after=context.get("role_after", ""),
        previous=context.get("previous_external_id", ""),
        current=context.get("external_id", ""),
        deadline=context.get("deadline_at", ""),
        ends=context.get("access_ends_at", ""),
    )


def _former_managers(
    session: Session, review: RevocationReview, *, exclude: uuid.UUID | None
) -> list[uuid.UUID]:
    """The managers a deleted team had (its memberships are gone), still ACTIVE."""
    former = [uuid.UUID(m) for m in review.context.get("manager_ids", [])]
    if not former:
        return []
    active = session.scalars(
        select(User.id).where(User.id.in_(former), User.status == UserStatus.ACTIVE)
    )
    return [uid for uid in active if uid != exclude]


def _counts(session: Session, review: RevocationReview) -> dict[str, int]:
    session.flush()
    rows = session.execute(
        select(ReviewFinding.state, func.count())
        .where(ReviewFinding.review_id == review.id)
        .group_by(ReviewFinding.state)
    )
    return {state.value: int(count) for state, count in rows}


def affected_team_ids(session: Session, review: RevocationReview) -> set[uuid.UUID]:
    """Teams of the findings, and the teams the revoked person belonged to."""
    session.flush()
    teams: set[uuid.UUID] = set(
        session.scalars(
            select(ReviewFinding.team_id)
            .where(ReviewFinding.review_id == review.id, ReviewFinding.team_id.is_not(None))
            .distinct()
        )
    )
    if review.team_id is not None:
        teams.add(review.team_id)
    if review.user_id is not None:
        teams |= set(
            session.scalars(
                select(TeamMembership.team_id).where(TeamMembership.user_id == review.user_id)
            )
        )
    return teams


def team_manager_ids(
    session: Session, team_ids: set[uuid.UUID], *, exclude: uuid.UUID | None = None
) -> list[uuid.UUID]:
    if not team_ids:
        return []
    query = (
        select(User.id)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(
            TeamMembership.team_id.in_(team_ids),
            TeamMembership.role == TeamRole.MANAGER,
            User.status == UserStatus.ACTIVE,
        )
        .distinct()
    )
    return [uid for uid in session.scalars(query) if uid != exclude]


def admin_ids(
    session: Session, organisation_id: uuid.UUID, *, exclude: uuid.UUID | None = None
) -> list[uuid.UUID]:
    query = select(User.id).where(
        User.organisation_id == organisation_id,
        User.role == Role.ORG_ADMIN,
        User.status == UserStatus.ACTIVE,
    )
    return [uid for uid in session.scalars(query.order_by(User.id)) if uid != exclude]


def finding_summary(finding: ReviewFinding) -> dict[str, Any]:
    return {
        "id": str(finding.id),
        "kind": finding.kind,
        "subject_type": finding.subject_type,
        "subject_id": str(finding.subject_id),
        "subject_name": finding.detail.get("name", ""),
        "team_id": _str(finding.team_id),
        "severity": finding.severity.value,
        "action": finding.action,
        "action_taken": finding.action_taken,
        "state": finding.state.value,
        "invalidation_status": finding.invalidation_status,
        **_pending_age(finding),
    }


def _pending_age(finding: ReviewFinding) -> dict[str, Any]:
    """How long a revoked key has waited for the gateway to forget it (pending findings only)."""
    requested = finding.invalidation_requested_at
    if finding.invalidation_status != INVALIDATION_PENDING or requested is None:
        return {}
    age = max(0.0, (utcnow() - _aware(requested)).total_seconds())
    return {
        "invalidation_requested_at": _aware(requested).isoformat(),
        "invalidation_pending_seconds": round(age, 1),
    }


def _lock(session: Session, query: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)
