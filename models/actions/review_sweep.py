"""The periodic sweep: find drift after revocations with a few set-based queries, fix it.

Drift: a revocation whose review never opened (its task was lost), a REVOKED person with an
active key nobody has looked at (created after the revocation, say), usage after the
revocation not yet on a finding, a team whose managers are all revoked, and an open review
whose person was reactivated. Each query returns only revocations that need work, so a sweep
over a large, settled directory costs a handful of indexed queries and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, text
from sqlalchemy.orm import Session, aliased

from models import key_scope, person_lock
from models.actions import reviews
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    ReviewFinding,
    Revocation,
    RevocationReview,
    TeamMembership,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import ReviewStatus, TeamRole, UserStatus

MISSING_REVIEWS_BATCH = 20
# The longest a late opening waits on another transaction's lock (see open_missing_review).
LATE_OPEN_LOCK_WAIT = "1s"


@dataclass
class SweepResult:
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.opened) + len(self.updated) + len(self.closed)

    def as_dict(self) -> dict[str, Any]:
        return {"opened": self.opened, "updated": self.updated, "closed": self.closed}


def sweep_reviews(
    session: Session,
    *,
    actor: Actor,
    organisation_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> SweepResult:
    now = now or utcnow()
    result = SweepResult()
    for review in session.scalars(_undone_reviews(organisation_id)):
        if reviews.close_undone_review(session, review=review, actor=actor, now=now):
            result.closed.append(str(review.id))
    for revocation_id in _without_review(session, organisation_id):
        review = reviews.open_revocation_review(
            session, revocation_id=revocation_id, actor=actor, now=now
        )
        if review is not None:
            result.opened.append(str(review.id))
    drifting = (
        _unreviewed_active_keys(session, organisation_id)
        | unrecorded_usage(session, organisation_id)
        | _teams_left_without_manager(session, organisation_id)
    )
    for revocation_id in sorted(drifting):
        review = reviews.review_of(session, revocation_id)
        if review is None:
            continue
        if reviews.refresh_review(session, review=review, actor=actor, now=now).changed:
            result.updated.append(str(review.id))
    return result


def review_keys_of_leavers(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    key_ids: Sequence[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """A key Odock brings in (a push, an event, a listing) for a person revoked here is put
    to their review now, as their revocation would have (revoked or held by the key policy),
    not at the next sweep. Of these keys (None: all the organisation's). The reviews changed.

    Every source calls it in a transaction begun after the one that wrote the keys committed
    (a push or an event also calls it before, for a holder it read REVOKED). A revocation
    committing while the keys were written missed them (not yet committed); this transaction
    then reads the person REVOKED, or, had the revocation not committed when this read, its
    review opens after it did, and after the keys were: one of the two puts them to review.
    The people are locked (models.person_lock) and read again first, as a revocation and a
    reactivation lock them: a reactivation at the same moment comes wholly before or after."""
    return _review_leavers(
        session, lambda: _unreviewed_active_keys(session, organisation_id, key_ids), actor, now
    )


def review_usage_of_leavers(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    usage_ids: Sequence[str],
    now: datetime | None = None,
) -> list[str]:
    """Usage Odock brings in (a push, an event, an import) after the revocation of a person
    revoked here, by them or through a key they hold, goes on their review now (the urgent
    finding), not at the next sweep. Of these records (their `id`s). The reviews changed.

    Every source calls it in a transaction begun after the one that stored the records
    committed, as for keys (review_keys_of_leavers): a revocation committing while they were
    stored did not see them, so this transaction reads the person REVOKED, or the
    revocation's review opens after the records committed, and sees them."""
    if not usage_ids:
        return []
    return _review_leavers(
        session, lambda: unrecorded_usage(session, organisation_id, usage_ids), actor, now
    )


def _review_leavers(
    session: Session,
    due_revocations: Callable[[], set[uuid.UUID]],
    actor: Actor,
    now: datetime | None,
) -> list[str]:
    """Open or refresh the review of each revocation `due_revocations` finds, its person
    locked and the question asked again under the lock. The reviews changed."""
    due = due_revocations()
    if not due:
        return []
    _lock_leavers(session, due)
    now = now or utcnow()
    changed = []
    for revocation_id in sorted(due_revocations()):
        review = reviews.review_of(session, revocation_id) or reviews.open_revocation_review(
            session, revocation_id=revocation_id, actor=actor, now=now
        )
        if (
            review is not None
            and reviews.refresh_review(session, review=review, actor=actor, now=now).changed
        ):
            changed.append(str(review.id))
    return changed


def _lock_leavers(session: Session, revocation_ids: set[uuid.UUID]) -> None:
    people = session.scalars(select(Revocation.user_id).where(Revocation.id.in_(revocation_ids)))
    person_lock.lock_people(session, [p for p in people if not person_lock.holds(session, p)])


def revocations_missing_review(
    session: Session,
    *,
    older_than: timedelta,
    within: timedelta,
    limit: int = MISSING_REVIEWS_BATCH,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """For the cut-off reaper: revocations in force from the last `within` whose review has
    not opened `older_than` after the revocation (its task died with a worker), oldest first."""
    now = now or utcnow()
    current = _current_revocations(None)
    has_review = exists().where(RevocationReview.revocation_id == current.c.id)
    query = (
        select(current.c.id)
        .where(
            current.c.revoked_at >= now - within,
            current.c.revoked_at <= now - older_than,
            ~has_review,
        )
        .order_by(current.c.revoked_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def open_missing_review(
    session: Session, *, revocation_id: uuid.UUID, actor: Actor, now: datetime | None = None
) -> RevocationReview | None:
    """Open the review of a revocation `revocations_missing_review` found, unless another
    caller is opening it (its row locked: that caller finishes it) or it opened meanwhile.

    On PostgreSQL a lock held elsewhere for longer than LATE_OPEN_LOCK_WAIT ends the attempt
    with a transient OperationalError (55P03) for the caller to roll back: the cut-off reaper
    calls this, and a slot it shares with cut-offs never waits on a review's locks; its next
    tick tries again."""
    if not _lock_free(session, revocation_id):
        return None
    return reviews.open_revocation_review(
        session, revocation_id=revocation_id, actor=actor, now=now or utcnow()
    )


def _lock_free(session: Session, revocation_id: uuid.UUID) -> bool:
    """Lock the revocation unless someone holds it (PostgreSQL; SQLite serialises writers)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    session.execute(text(f"SET LOCAL lock_timeout = '{LATE_OPEN_LOCK_WAIT}'"))
    locked = session.scalar(
        select(Revocation.id)
        .where(Revocation.id == revocation_id)
        .with_for_update(skip_locked=True, of=Revocation)
    )
    return locked is not None


def _current_revocations(organisation_id: uuid.UUID | None) -> Any:
    """Revocations still in force: not undone, and the person still REVOKED."""
    query = (
        select(Revocation.id, Revocation.organisation_id, Revocation.user_id, Revocation.revoked_at)
        .join(User, User.id == Revocation.user_id)
        .where(Revocation.undone_at.is_(None), User.status == UserStatus.REVOKED)
    )
    if organisation_id is not None:
        query = query.where(Revocation.organisation_id == organisation_id)
    return query.subquery("current")


def _undone_reviews(organisation_id: uuid.UUID | None) -> Any:
    query = (
        select(RevocationReview)
        .join(Revocation, Revocation.id == RevocationReview.revocation_id)
        .where(RevocationReview.status == ReviewStatus.OPEN, Revocation.undone_at.is_not(None))
    )
    if organisation_id is not None:
        query = query.where(RevocationReview.organisation_id == organisation_id)
    return query


def _without_review(session: Session, organisation_id: uuid.UUID | None) -> list[uuid.UUID]:
    current = _current_revocations(organisation_id)
    has_review = exists().where(RevocationReview.revocation_id == current.c.id)
    return list(session.scalars(select(current.c.id).where(~has_review)))


def _finding_exists(revocation_id: Any, kinds: tuple[str, ...], subject_id: Any) -> Any:
    return (
        select(ReviewFinding.id)
        .join(RevocationReview, RevocationReview.id == ReviewFinding.review_id)
        .where(
            RevocationReview.revocation_id == revocation_id,
            ReviewFinding.kind.in_(kinds),
            ReviewFinding.subject_id == subject_id,
        )
        .exists()
    )


def _unreviewed_active_keys(
    session: Session,
    organisation_id: uuid.UUID | None,
    key_ids: Sequence[uuid.UUID] | None = None,
) -> set[uuid.UUID]:
    """Revocations in force whose person holds an active key no finding of theirs names (of
    these keys only, when given)."""
    current = _current_revocations(organisation_id)
    query = (
        select(current.c.id)
        .join(VirtualApiKey, key_scope.held_by(current.c.user_id))
        .where(
            VirtualApiKey.revoked.is_(False),
            ~_finding_exists(current.c.id, reviews.KEY_KINDS, VirtualApiKey.id),
        )
        .distinct()
    )
    if key_ids is not None:
        query = query.where(VirtualApiKey.id.in_(key_ids))
    return set(session.scalars(query))


def unrecorded_usage(
    session: Session, organisation_id: uuid.UUID | None, usage_ids: Sequence[str] | None = None
) -> set[uuid.UUID]:
    """Revocations in force with usage after them no finding of theirs covers (of these
    records only, by their `id`, when given): the one rule of when usage goes on a review,
    for the sweep and for every ingest (odock_usage.flag_usage_after_revocation)."""
    current = _current_revocations(organisation_id)
    finding = aliased(ReviewFinding)
    review = aliased(RevocationReview)
    recorded = (
        select(finding.id)
        .join(review, review.id == finding.review_id)
        .where(
            review.revocation_id == current.c.id,
            finding.kind == reviews.KIND_USAGE,
            finding.subject_id == UsageRecord.api_key_id,
            finding.observed_until >= UsageRecord.occurred_at,
        )
        .exists()
    )
    recorded_without_key = (
        select(finding.id)
        .join(review, review.id == finding.review_id)
        .where(
            review.revocation_id == current.c.id,
            finding.kind == reviews.KIND_USAGE,
            finding.subject_id == current.c.user_id,
            finding.observed_until >= UsageRecord.occurred_at,
        )
        .exists()
    )
    unrecorded = and_(
        # Record ids are unique only within an organisation.
        UsageRecord.organisation_id == current.c.organisation_id,
        or_(
            and_(UsageRecord.api_key_id.is_not(None), ~recorded),
            and_(UsageRecord.api_key_id.is_(None), ~recorded_without_key),
        ),
    )
    if usage_ids is not None:
        unrecorded = and_(unrecorded, UsageRecord.external_id.in_(usage_ids))
    by_person = (
        select(current.c.id)
        .join(UsageRecord, UsageRecord.user_id == current.c.user_id)
        .where(UsageRecord.occurred_at > current.c.revoked_at, unrecorded)
    )
    by_key = (
        select(current.c.id)
        .join(VirtualApiKey, key_scope.held_by(current.c.user_id))
        .join(UsageRecord, UsageRecord.api_key_id == VirtualApiKey.id)
        .where(UsageRecord.occurred_at > current.c.revoked_at, unrecorded)
    )
    return set(session.scalars(by_person.union(by_key)))


def _teams_left_without_manager(
    session: Session, organisation_id: uuid.UUID | None
) -> set[uuid.UUID]:
    current = _current_revocations(organisation_id)
    active_manager = aliased(TeamMembership)
    active_user = aliased(User)
    has_active_manager = (
        select(active_manager.user_id)
        .join(active_user, active_user.id == active_manager.user_id)
        .where(
            active_manager.team_id == TeamMembership.team_id,
            active_manager.role == TeamRole.MANAGER,
            active_user.status == UserStatus.ACTIVE,
        )
        .exists()
    )
    query = (
        select(current.c.id)
        .join(TeamMembership, TeamMembership.user_id == current.c.user_id)
        .where(
            TeamMembership.role == TeamRole.MANAGER,
            ~has_active_manager,
            ~_finding_exists(current.c.id, (reviews.KIND_LAST_MANAGER,), TeamMembership.team_id),
        )
        .distinct()
    )
    return set(session.scalars(query))
