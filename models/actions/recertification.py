"""Key recertification campaigns: each key in scope becomes a finding for its owner.

A campaign is a review (cause `recertification`) whose findings each name their owner; the
review machinery notifies, escalates (owner, team managers, admins) and closes it. Opening
is idempotent per schedule slot (a unique constraint and the policy row's lock) and writes
its findings with bulk inserts computed by one scope query. Keys nobody confirmed by the
deadline are handled by the organisation's policy: revoked through the key revocation path
(store, gateway, cut-off) or left open for the escalation to carry on.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    union,
    update,
)
from sqlalchemy.orm import Session

from models import audit, locked_rows, unique_rows
from models.actions import key_revocation, key_rotations, reviews
from models.actor import Actor
from models.base import in_utc, unsaved_defaults, utcnow
from models.entities import (
    Organisation,
    RecertificationCampaign,
    RecertificationPolicy,
    ReviewFinding,
    RevocationReview,
    TeamMembership,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import (
    FindingState,
    RecertDeadlinePolicy,
    RecertDecision,
    ReviewCause,
    ReviewStatus,
    Severity,
    TeamRole,
    UserStatus,
)
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.notifications import notify
from models.text import clean_text

KIND = reviews.KIND_RECERTIFY_KEY
EVENT_OPENED = "recertification.opened"
REPORT_LIMIT = 1000  # names listed per report section; the totals count them all
DAY_LIMITS = {
    "every_days": (1, 3650),
    "deadline_days": (1, 365),
    "spend_days": (1, 3650),
    "unused_days": (1, 3650),
    "inactive_days": (1, 3650),
}
FLAGS = ("enabled", "moved_people")
MANUAL = "manual:"
SCOPE = ("spend_days", "unused_days", "moved_people")


@dataclass(frozen=True)
class Opened:
    campaign: RecertificationCampaign
    created: bool  # False: this slot's campaign already existed


def policy_of(session: Session, organisation_id: uuid.UUID) -> RecertificationPolicy:
    """The organisation's policy; until a writer stores one (configure, or a campaign's
    opening), the defaults (disabled) in an object that is never saved: a read writes nothing."""
    stored = session.get(RecertificationPolicy, organisation_id)
    if stored is not None:
        return stored
    return unsaved_defaults(RecertificationPolicy, organisation_id=organisation_id)


def policy_view(policy: RecertificationPolicy) -> dict[str, Any]:
    return {
        "enabled": policy.enabled,
        "every_days": policy.every_days,
        "anchor_at": policy.anchor_at.isoformat(),
        "deadline_days": policy.deadline_days,
        "spend_days": policy.spend_days,
        "unused_days": policy.unused_days,
        "moved_people": policy.moved_people,
        "inactive_days": policy.inactive_days,
        "on_deadline": policy.on_deadline.value,
    }


def configure(
    session: Session, *, organisation_id: uuid.UUID, actor: Actor, changes: dict[str, Any]
) -> RecertificationPolicy:
    """Change the policy; every value is checked before any is applied."""
    checked = {name: _checked(name, value) for name, value in changes.items()}
    policy = _locked_policy(session, organisation_id, actor)
    scope = {name: checked.get(name, getattr(policy, name)) for name in SCOPE}
    if not any(value not in (None, False) for value in scope.values()):
        raise InvalidInput("a scope is needed: spend_days, unused_days or moved_people")
    before = policy_view(policy)
    for name, value in checked.items():
        setattr(policy, name, value)
    policy.updated_at = utcnow()
    after = policy_view(policy)
    if after != before:
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="recertification.policy_changed",
            target_type="recertification_policy",
            target_id=organisation_id,
            before=before,
            after=after,
        )
    return policy


def _checked(name: str, value: Any) -> Any:
    if name in DAY_LIMITS:
        low, high = DAY_LIMITS[name]
        optional = name in ("spend_days", "unused_days")
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            hint = " (or null to leave it out of the scope)" if optional else ""
            raise InvalidInput(
                f"{name} must be a whole number from {low} to {high}{hint}", field=name
            )
        return value
    if name in FLAGS:
        if not isinstance(value, bool):
            raise InvalidInput(f"{name} must be true or false", field=name)
        return value
    if name == "on_deadline":
        try:
            return RecertDeadlinePolicy(value)
        except ValueError:
            allowed = ", ".join(p.value for p in RecertDeadlinePolicy)
            raise InvalidInput(f"on_deadline must be one of {allowed}", field=name) from None
    if name == "anchor_at":
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput("anchor_at must be a date and time with a time zone", field=name)
        return in_utc(value, name)
    raise InvalidInput(f"unknown setting {name}", field=name)


def _locked_policy(
    session: Session, organisation_id: uuid.UUID, actor: Actor
) -> RecertificationPolicy:
    """The policy row, locked (two writers of one organisation take turns), stored with the
    defaults by the first writer, which the audit trail shows."""
    policy, created = unique_rows.insert_or_find(
        session, RecertificationPolicy, {"organisation_id": organisation_id}, lock=True
    )
    if created:
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="recertification.policy_created",
            target_type="recertification_policy",
            target_id=organisation_id,
            after=policy_view(policy),
        )
    return policy


def schedule_slot(policy: RecertificationPolicy, now: datetime) -> int | None:
    """The schedule slot `now` falls in; None before the first one."""
    if now < policy.anchor_at:
        return None
    return int((now - policy.anchor_at) / timedelta(days=policy.every_days))


def open_due(session: Session, *, actor: Actor, now: datetime | None = None) -> list[Opened]:
    """Open the current slot's campaign of every organisation whose schedule is enabled."""
    now = now or utcnow()
    policies = session.scalars(
        select(RecertificationPolicy).where(
            RecertificationPolicy.enabled.is_(True), RecertificationPolicy.anchor_at <= now
        )
    ).all()
    opened = []
    for policy in policies:
        slot = schedule_slot(policy, now)
        if slot is not None:
            opened.append(
                open_campaign(
                    session,
                    organisation_id=policy.organisation_id,
                    actor=actor,
                    slot=f"schedule:{slot}",
                    now=now,
                )
            )
    return [o for o in opened if o.created]


def open_campaign(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    slot: str | None = None,
    now: datetime | None = None,
) -> Opened:
    """Open the campaign of this slot once. By hand (no slot): a slot of its own, unless a
    campaign opened by hand is still running, which is the one returned."""
    now = now or utcnow()
    policy = _locked_policy(session, organisation_id, actor)
    existing = (
        _campaign_in_slot(session, organisation_id, slot)
        if slot
        else _running_manual_campaign(session, organisation_id)
    )
    if existing is not None:
        return Opened(existing, created=False)
    slot = slot or f"{MANUAL}{now.strftime('%Y%m%dT%H%M%S.%f')}"
    since = _since(session, policy, now)
    campaign = RecertificationCampaign(
        organisation_id=organisation_id,
        slot=slot,
        opened_by=str(actor),
        opened_at=now,
        deadline_at=now + timedelta(days=policy.deadline_days),
        scope={**policy_view(policy), "moved_since": since.isoformat()},
    )
    review = RevocationReview(
        organisation_id=organisation_id,
        cause=ReviewCause.RECERTIFICATION,
        context={"deadline_at": campaign.deadline_at.isoformat(), "slot": slot},
    )
    session.add_all([campaign, review])
    session.flush()
    campaign.review_id = review.id
    review.context = {**review.context, "campaign_id": str(campaign.id)}
    carried = _supersede_running_campaigns(session, campaign, actor)
    counts = _write_findings(session, review, scope_query(policy, since, now, carried), now)
    campaign.report = {"in_scope": counts, **_report(session, organisation_id, policy, now)}
    session.flush()
    _announce(session, campaign, review, counts)
    return Opened(campaign, created=True)


def _campaign_in_slot(
    session: Session, organisation_id: uuid.UUID, slot: str
) -> RecertificationCampaign | None:
    return session.scalar(
        select(RecertificationCampaign).where(
            RecertificationCampaign.organisation_id == organisation_id,
            RecertificationCampaign.slot == slot,
        )
    )


def _running(organisation_id: uuid.UUID) -> Select[RecertificationCampaign]:
    """This organisation's campaigns whose review is still open."""
    return (
        select(RecertificationCampaign)
        .join(RevocationReview, RevocationReview.id == RecertificationCampaign.review_id)
        .where(
            RecertificationCampaign.organisation_id == organisation_id,
            RevocationReview.status == ReviewStatus.OPEN,
        )
    )


def _running_manual_campaign(
    session: Session, organisation_id: uuid.UUID
) -> RecertificationCampaign | None:
    """A campaign opened by hand that has not reached its deadline and is not done yet."""
    return session.scalar(
        _running(organisation_id)
        .where(
            RecertificationCampaign.slot.startswith(MANUAL),
            RecertificationCampaign.enforced_at.is_(None),
        )
        .order_by(RecertificationCampaign.opened_at.desc())
        .limit(1)
    )


def _supersede_running_campaigns(
    session: Session, campaign: RecertificationCampaign, actor: Actor
) -> Any:
    """The new campaign takes over the questions earlier campaigns still wait for: their
    unanswered findings are resolved as superseded and their keys carried into the new one,
    so no key has two open questions and an earlier campaign (opened by hand, or still
    escalating) never empties the new one. SQL: the keys carried."""
    note = f"superseded by campaign {campaign.id}"
    earlier = _running(campaign.organisation_id).where(RecertificationCampaign.id != campaign.id)
    if session.get_bind().dialect.name == "postgresql":
        earlier = earlier.with_for_update(of=RecertificationCampaign)  # their deciders' turn
    for previous in session.scalars(earlier).all():
        superseded = session.execute(
            update(ReviewFinding)
            .where(
                ReviewFinding.review_id == previous.review_id,
                ReviewFinding.state == FindingState.OPEN,
                ReviewFinding.action_taken.is_(False),
            )
            .values(
                state=FindingState.RESOLVED,
                action="superseded",
                resolved_by=str(actor),
                resolved_at=campaign.opened_at,
                resolution=note,
                next_escalation_at=None,
                updated_at=campaign.opened_at,
            )
            .execution_options(synchronize_session=False)
        )
        count = int(getattr(superseded, "rowcount", 0) or 0)
        if count:
            _record_superseded(session, previous, campaign, actor, count)
    return select(ReviewFinding.subject_id).where(
        ReviewFinding.action == "superseded", ReviewFinding.resolution == note
    )


def _record_superseded(
    session: Session,
    previous: RecertificationCampaign,
    campaign: RecertificationCampaign,
    actor: Actor,
    count: int,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=previous,
        action="recertification.superseded",
        target_type="recertification_campaign",
        after={"by_campaign_id": str(campaign.id), "by_slot": campaign.slot, "findings": count},
    )
    review = session.get_one(RevocationReview, previous.review_id)
    reviews.close_if_settled(session, review=review, actor=actor, now=campaign.opened_at)


def _since(session: Session, policy: RecertificationPolicy, now: datetime) -> datetime:
    """Moves count from the previous campaign's opening (else one schedule period back)."""
    previous = session.scalar(
        select(func.max(RecertificationCampaign.opened_at)).where(
            RecertificationCampaign.organisation_id == policy.organisation_id
        )
    )
    return previous or now - timedelta(days=policy.every_days)


def _moved_people(since: datetime) -> Any:
    """People who joined a team, or whose team got a new manager, since `since` (membership
    timestamps; leaving a team opens its own review at the time)."""
    joined = select(TeamMembership.user_id).where(TeamMembership.created_at > since)
    new_manager = select(TeamMembership.team_id).where(
        TeamMembership.role == TeamRole.MANAGER, TeamMembership.created_at > since
    )
    managed = select(TeamMembership.user_id).where(
        TeamMembership.team_id.in_(new_manager), TeamMembership.role == TeamRole.MEMBER
    )
    return union(joined, managed)


def _used_since(moment: datetime) -> Any:
    return exists().where(
        UsageRecord.api_key_id == VirtualApiKey.id, UsageRecord.occurred_at >= moment
    )


REASONS = ("spend", "unused", "moved", "carried")


def scope_query(
    policy: RecertificationPolicy, since: datetime, now: datetime, carried: Any = None
) -> Select[Any]:
    """Active keys in scope that no open finding covers yet, each with a 1/0 column per reason
    it is in scope for (`carried`: the keys an earlier campaign's open question moves over)."""
    organisation_id = policy.organisation_id
    owner = func.coalesce(VirtualApiKey.owner_user_id, VirtualApiKey.created_by_user_id)
    reasons: dict[str, Any] = {}
    if policy.spend_days is not None:
        reasons["spend"] = _used_since(now - timedelta(days=policy.spend_days))
    if policy.unused_days is not None:
        cutoff = now - timedelta(days=policy.unused_days)
        reasons["unused"] = ~_used_since(cutoff) & (VirtualApiKey.created_at <= cutoff)
    if policy.moved_people:
        reasons["moved"] = owner.in_(select(_moved_people(since).subquery().c.user_id))
    if carried is not None:
        reasons["carried"] = VirtualApiKey.id.in_(carried)
    if not reasons:
        raise InvalidInput("a scope is needed: spend_days, unused_days or moved_people")
    last_used = (
        select(func.max(UsageRecord.occurred_at))
        .where(UsageRecord.api_key_id == VirtualApiKey.id)
        .scalar_subquery()
    )
    flags = [
        case((reasons[name], 1), else_=0).label(name) if name in reasons else literal(0).label(name)
        for name in REASONS
    ]
    return select(
        VirtualApiKey.id,
        VirtualApiKey.name,
        VirtualApiKey.masked_value,
        VirtualApiKey.key_type,
        VirtualApiKey.owner_team_id,
        owner.label("owner_user_id"),
        last_used.label("last_used_at"),
        *flags,
    ).where(
        VirtualApiKey.organisation_id == organisation_id,
        VirtualApiKey.revoked.is_(False),
        _any(list(reasons.values())),
        ~reviews.open_finding_about(VirtualApiKey.id),
    )


def _any(conditions: list[Any]) -> Any:
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined | condition
    return combined


def _write_findings(
    session: Session, review: RevocationReview, scope: Select[Any], now: datetime
) -> dict[str, int]:
    """The findings, written by one INSERT ... SELECT from the scope query; the counts."""
    organisation = session.get_one(Organisation, review.organisation_id)
    next_at = now + reviews.escalation_interval(organisation)
    scoped = scope.subquery("scoped")
    postgres = session.get_bind().dialect.name == "postgresql"
    column = ReviewFinding.__table__.c
    values: dict[str, Any] = {
        "id": func.gen_random_uuid() if postgres else func.lower(func.hex(func.randomblob(16))),
        "review_id": literal(review.id, column.review_id.type),
        "kind": literal(KIND),
        "subject_type": literal("api_key"),
        "subject_id": scoped.c.id,
        "severity": literal(Severity.MEDIUM.value),
        "action": literal("confirm"),
        "action_taken": literal(False),
        "state": literal(FindingState.OPEN.value),
        "team_id": scoped.c.owner_team_id,
        "owner_user_id": scoped.c.owner_user_id,
        "detail": _detail_json(scoped, postgres),
        "escalation_level": literal(0),
        "last_notified_at": literal(now, column.last_notified_at.type),
        "next_escalation_at": literal(next_at, column.next_escalation_at.type),
        "created_at": literal(now, column.created_at.type),
        "updated_at": literal(now, column.updated_at.type),
    }
    session.execute(insert(ReviewFinding).from_select(list(values), select(*values.values())))
    return _counts(session, review)


def _detail_json(scoped: Any, postgres: bool) -> Any:
    """The finding's detail built in SQL: name, masked value, type, why, last use."""
    combos = [
        [name for name, on in zip(REASONS, bits, strict=True) if on]
        for bits in itertools.product((1, 0), repeat=len(REASONS))
    ]
    in_scope = case(
        *[
            (
                and_(*[scoped.c[name] == (1 if name in combo else 0) for name in REASONS]),
                json.dumps(combo),
            )
            for combo in combos
        ],
        else_="[]",
    )
    pairs = [
        literal("name"),
        scoped.c.name,
        literal("masked_value"),
        scoped.c.masked_value,
        literal("key_type"),
        scoped.c.key_type,
        literal("in_scope"),
        cast(in_scope, JSON) if postgres else func.json(in_scope),
        literal("last_used_at"),
        scoped.c.last_used_at,
    ]
    built = func.json_build_object(*pairs) if postgres else func.json_object(*pairs)
    return cast(built, JSON) if postgres else built


def _counts(session: Session, review: RevocationReview) -> dict[str, int]:
    """Keys per reason, read back from the findings just written."""
    why = ReviewFinding.detail["in_scope"].as_string()
    rows = session.execute(
        select(why, func.count()).where(ReviewFinding.review_id == review.id).group_by(why)
    ).all()
    counts = {"keys": 0, **dict.fromkeys(REASONS, 0)}
    for listed, count in rows:
        counts["keys"] += count
        for name in json.loads(listed or "[]"):
            counts[name] += count
    return counts


def _report(
    session: Session, organisation_id: uuid.UUID, policy: RecertificationPolicy, now: datetime
) -> dict[str, Any]:
    """Unused keys and inactive people, as the campaign found them."""
    cutoff = now - timedelta(days=policy.unused_days or policy.inactive_days)
    unused = (
        select(VirtualApiKey.id, VirtualApiKey.name)
        .where(
            VirtualApiKey.organisation_id == organisation_id,
            VirtualApiKey.revoked.is_(False),
            VirtualApiKey.created_at <= cutoff,
            ~_used_since(cutoff),
        )
        .order_by(VirtualApiKey.id)
    )
    idle_since = now - timedelta(days=policy.inactive_days)
    active_lately = exists().where(
        UsageRecord.user_id == User.id, UsageRecord.occurred_at >= idle_since
    )
    inactive = (
        select(User.id, User.email)
        .where(
            User.organisation_id == organisation_id,
            User.status == UserStatus.ACTIVE,
            User.created_at <= idle_since,
            ~active_lately,
        )
        .order_by(User.email)
    )
    return {
        "unused_keys": _listed(session, unused, "name", cutoff),
        "inactive_people": _listed(session, inactive, "email", idle_since),
    }


def _listed(session: Session, query: Any, label: str, since: datetime) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.execute(query.limit(REPORT_LIMIT)).all()
    return {
        "since": since.isoformat(),
        "total": int(total or 0),
        "items": [{"id": str(row[0]), label: row[1]} for row in rows],
    }


def _announce(
    session: Session, campaign: RecertificationCampaign, review: RevocationReview, counts: dict
) -> None:
    audit.record_change(
        session,
        actor=Actor.schedule("recertification")
        if campaign.slot.startswith("schedule:")
        else Actor.system("recertification"),
        subject=campaign,
        action="recertification.opened",
        target_type="recertification_campaign",
        after={
            "slot": campaign.slot,
            "review_id": str(review.id),
            "deadline_at": campaign.deadline_at.isoformat(),
            "opened_by": campaign.opened_by,
            "in_scope": counts,
        },
    )
    if counts["keys"] == 0:
        reviews.close_empty_review(session, review=review, now=campaign.opened_at)
        return
    owners = [
        owner
        for owner in session.scalars(
            select(ReviewFinding.owner_user_id)
            .where(ReviewFinding.review_id == review.id, ReviewFinding.owner_user_id.is_not(None))
            .distinct()
        )
        if owner is not None
    ]
    notify(
        session,
        organisation_id=campaign.organisation_id,
        event=EVENT_OPENED,
        payload={
            "review_id": str(review.id),
            "campaign_id": str(campaign.id),
            "cause": ReviewCause.RECERTIFICATION.value,
            "message": (
                f"Key recertification: confirm (keep, with a reason), rotate or revoke each "
                f"of your keys listed by {campaign.deadline_at.isoformat()}; unconfirmed keys: "
                f"{campaign.scope['on_deadline']}"
            ),
            "deadline_at": campaign.deadline_at.isoformat(),
            "in_scope": counts,
        },
        recipient_user_ids=[*owners, *reviews.admin_ids(session, campaign.organisation_id)],
    )


def campaign_finding(
    session: Session, organisation_id: uuid.UUID, finding_id: uuid.UUID
) -> ReviewFinding:
    """A finding of one of this organisation's campaigns."""
    finding = session.get(ReviewFinding, finding_id)
    if finding is None or finding.kind != KIND or finding.review.organisation_id != organisation_id:
        raise NotFound("recertification finding not found")
    return finding


def decide(
    session: Session,
    *,
    finding: ReviewFinding,
    decision: RecertDecision,
    reason: str,
    actor: Actor,
) -> ReviewFinding:
    """The owner's (or a manager's, or an admin's) answer: keep with a reason, rotate, revoke.
    One answer per finding: the first one given, or the deadline's."""
    _take_campaign_turn(session, finding)
    if finding.state is not FindingState.OPEN:
        raise InvalidTransition(
            f"the finding is already {finding.state}", state=finding.state.value
        )
    if finding.action_taken:
        raise InvalidTransition(
            f"the finding is already decided ({finding.action}); the key's revocation is "
            "waiting for the gateway's acknowledgement",
            state=reviews.INVALIDATION_PENDING,
        )
    required = decision is RecertDecision.KEEP
    reason = clean_text(reason, field="reason", max_length=2000, required=required)
    key = session.get(VirtualApiKey, finding.subject_id)
    if key is None:
        raise NotFound("the key no longer exists")
    revoked: set[uuid.UUID] = set()
    organisation_id = finding.review.organisation_id
    if decision is RecertDecision.ROTATE:
        key_rotations.request_key_rotation(
            session,
            organisation_id=organisation_id,
            key_id=key.id,
            actor=actor,
            reason=reason or "recertification",
        )
    elif decision is RecertDecision.REVOKE:
        revoked = _revoke(session, [finding], actor, reason="recertification")
    finding.action = {"keep": "kept", "rotate": "rotation_requested", "revoke": "revoked"}[
        decision.value
    ]
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation_id,
        action="recertification.decided",
        target_type="api_key",
        target_id=key.id,
        after={"decision": decision.value, "reason": reason, "finding_id": str(finding.id)},
    )
    if decision is RecertDecision.REVOKE and revoked:
        return finding  # done when the gateway acknowledges, as any revoked key's finding
    note = f"{decision.value}: {reason}" if reason else decision.value
    return reviews.close_finding(session, finding=finding, actor=actor, note=note)


def _take_campaign_turn(session: Session, finding: ReviewFinding) -> None:
    """Wait for the campaign's other deciders (people, an admin's restore, the deadline) and
    for the gateway's acknowledgement of the key to finish, then re-read the finding as it is
    now, locked: two answers to one finding must not both apply. The key is locked before the
    finding, in the acknowledgement's order (reviews.record_invalidation), which takes no
    campaign turn. (SQLite's writers already take turns: each transaction begins IMMEDIATE.)"""
    turn = select(RecertificationCampaign.id).where(
        RecertificationCampaign.review_id == finding.review_id
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(turn.with_for_update())
    key_revocation.lock_keys(session, VirtualApiKey.id == finding.subject_id)
    locked_rows.locked_or_404(session, finding, "recertification finding not found")


def _revoke(
    session: Session, findings: list[ReviewFinding], actor: Actor, *, reason: str
) -> set[uuid.UUID]:
    """Revoke the findings' keys through the key revocation path; mark what it revoked."""
    if not findings:
        return set()
    organisation_id = findings[0].review.organisation_id
    revoked = set(
        key_revocation.revoke_keys(
            session,
            organisation_id=organisation_id,
            scope=VirtualApiKey.id.in_([f.subject_id for f in findings]),
            actor=actor,
            reason=reason,
            audit_detail={"by": "recertification", "review_id": str(findings[0].review_id)},
        )
    )
    now = utcnow()
    for finding in findings:
        if finding.subject_id in revoked:
            finding.action, finding.action_taken = "revoked", True
            finding.invalidation_status = reviews.INVALIDATION_PENDING
            finding.invalidation_requested_at = now
            finding.next_escalation_at = None  # the cut-off's deadline alarm takes over
    return revoked


def enforce_due(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Apply the deadline policy to every campaign past its deadline; their ids."""
    now = now or utcnow()
    query = (
        select(RecertificationCampaign)
        .where(
            RecertificationCampaign.deadline_at <= now,
            RecertificationCampaign.enforced_at.is_(None),
        )
        .order_by(RecertificationCampaign.deadline_at)
        .limit(50)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    campaigns = session.scalars(query).all()
    for campaign in campaigns:
        enforce(session, campaign=campaign, now=now)
    return [c.id for c in campaigns]


DEADLINE_ACTOR = Actor.schedule("recertification.deadline")


def enforce(session: Session, *, campaign: RecertificationCampaign, now: datetime) -> None:
    """The deadline: the findings nobody answered are handled by the campaign's policy (the
    caller holds the campaign's row, so no decision is being made meanwhile)."""
    open_findings = list(
        session.scalars(
            select(ReviewFinding)
            .where(
                ReviewFinding.review_id == campaign.review_id,
                ReviewFinding.state == FindingState.OPEN,
                ReviewFinding.action_taken.is_(False),  # revoked: waits for the gateway
            )
            .execution_options(populate_existing=True)
        )
    )
    policy = RecertDeadlinePolicy(campaign.scope.get("on_deadline", "revoke"))
    revoked: set[uuid.UUID] = set()
    if policy is RecertDeadlinePolicy.REVOKE:
        revoked = _revoke(session, open_findings, DEADLINE_ACTOR, reason="recertification_deadline")
        # Revoked: open until the gateway acknowledges. Already revoked by someone: done.
        gone = [f for f in open_findings if f.subject_id not in revoked]
        for finding in gone:
            finding.action = "already_revoked"
        reviews.resolve_findings(
            session,
            findings=gone,
            actor=DEADLINE_ACTOR,
            note="not confirmed by the deadline; the key was already revoked",
        )
    campaign.enforced_at = now
    campaign.report = {
        **campaign.report,
        "deadline": {
            "policy": policy.value,
            "unconfirmed": len(open_findings),
            "revoked": len(revoked),
        },
    }
    audit.record_change(
        session,
        actor=DEADLINE_ACTOR,
        subject=campaign,
        action="recertification.deadline_enforced",
        target_type="recertification_campaign",
        after={"policy": policy.value, "unconfirmed": len(open_findings), "revoked": len(revoked)},
    )


def restore(
    session: Session, *, finding: ReviewFinding, actor: Actor, reason: str
) -> ReviewFinding:
    """An admin brings back a key the campaign revoked, through the key restore path."""
    # The key's holder first: the restore path decides on them (a leaver's key stays off),
    # and a revocation locks them before their keys, which the campaign's turn locks.
    key_revocation.lock_holder(session, finding.review.organisation_id, finding.subject_id)
    _take_campaign_turn(session, finding)
    if not finding.action_taken or finding.action != "revoked":
        raise InvalidTransition("only a key this campaign revoked can be restored")
    reason = clean_text(reason, field="reason", max_length=2000, required=False)
    restored = key_revocation.restore_key(
        session,
        organisation_id=finding.review.organisation_id,
        key_id=finding.subject_id,
        actor=actor,
        reason="recertification_restored",
        audit_detail={"finding_id": str(finding.id), "reason": reason},
    )
    if not restored:
        raise InvalidTransition("the key is not revoked any more")
    finding.action, finding.action_taken = "restored", False
    finding.invalidation_status = finding.invalidation_requested_at = None
    finding.detail = {
        **finding.detail,
        "restored_by": str(actor),
        "restored_at": utcnow().isoformat(),
        "restore_reason": reason,
    }
    audit.record(
        session,
        actor=actor,
        organisation_id=finding.review.organisation_id,
        action="recertification.restored",
        target_type="api_key",
        target_id=finding.subject_id,
        after={"finding_id": str(finding.id), "reason": reason},
    )
    if finding.state is FindingState.OPEN:
        reviews.close_finding(session, finding=finding, actor=actor, note="restored by an admin")
    return finding
