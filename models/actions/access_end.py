"""Access end dates: a person's access ends on its own at a known moment (a contract's end,
a leave date from HR, a directory account's expiry).

Any source may set the date; an admin may also move or clear one set by another source, and a
source that stops asserting a date clears only a date it set itself. At the date, the beat
revokes the person through the lifecycle policy with the source `schedule`, past the
mass-change gate like any source that takes access from many people at once (500 people with
the same leave date wait for an admin); a date moved later or cleared before then simply is
not due any more (audited as cancelling it, and taking back a revocation the gate holds).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from models import audit, person_lock
from models.actions import access_reviews, last_admin, lifecycle, mass_change, reviews
from models.actor import Actor
from models.base import in_utc, utcnow
from models.entities import MassChange, OrganisationSettings, User
from models.enums import ChangeKind, ChangeStatus, Source, UserStatus
from models.errors import InvalidInput

JOB = "access.end_due"
# A pending person's date declines them; a revoked person has nothing left to end.
ENDING = (UserStatus.ACTIVE, UserStatus.PENDING)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
SCHEDULE = Source.SCHEDULE


def set_access_end(session: Session, *, user: User, ends_at: datetime | None, actor: Actor) -> bool:
    """Set, move or clear when this person's access ends; audited; False when unchanged."""
    ends_at = checked_end(ends_at)
    person_lock.read_locked(session, user)
    current = user.access_ends_at
    if ends_at == current:
        return False
    if not _may_change(user, ends_at, actor.source):
        return False  # another source's date only ever comes earlier; an admin decides the rest
    if ends_at is not None and ends_at <= utcnow():
        # Passed: the next beat revokes them (and records it then, for a source's date).
        cause = last_admin.Cause.ACCESS_END_PASSED
        last_admin.before_losing_admin(session, user=user, actor=actor, cause=cause, ends_now=False)
    user.access_ends_at = ends_at
    user.access_ends_source = actor.source if ends_at is not None else None
    user.updated_at = utcnow()
    _audit(session, user, actor, before=current)
    _release_the_old_date(session, user, actor)
    return True


def _release_the_old_date(session: Session, user: User, actor: Actor) -> None:
    """What waited on the date before: a revocation the gate holds is taken back once the
    date is not due, the departure review closes once the date is further than the notice
    (and is brought up to date when it is kept)."""
    ends_at = user.access_ends_at
    if not _due(ends_at, utcnow()):
        kinds = mass_change.STATUS_KINDS
        mass_change.withdraw(session, user=user, kinds=kinds, actor=actor, source=SCHEDULE)
    if not _departure_near(session, user):
        why = f"the end date moved to {_iso(ends_at)}" if ends_at else "the end date was cleared"
        reviews.supersede_departure_review(session, user=user, actor=actor, note=why, announce=True)
        return
    kept = reviews.open_departure_review(session, user)
    if kept is not None:
        # The same departure on a new day: its findings follow what the person holds now.
        access_reviews.refresh_departure(session, review=kept, user=user, actor=actor)


def _departure_near(session: Session, user: User) -> bool:
    """The person's date is within the organisation's notice (or passed): a departure review
    opened for an earlier date still serves; a date further away opens its own in time."""
    if user.access_ends_at is None:
        return False
    days = session.get_one(OrganisationSettings, user.organisation_id).departure_notice_days
    return user.access_ends_at - timedelta(days=days) <= utcnow()


def checked_end(ends_at: datetime | None) -> datetime | None:
    """The date in UTC, or a clear error for one no clock can mean."""
    if ends_at is None:
        return None
    if ends_at.tzinfo is None or ends_at.utcoffset() is None:
        raise InvalidInput("access_ends_at must carry a time zone (e.g. a trailing Z)")
    ends_at = in_utc(ends_at, "access_ends_at").replace(microsecond=0)
    if ends_at < EARLIEST:
        raise InvalidInput(f"access_ends_at must be after {EARLIEST.date().isoformat()}")
    return ends_at


def due_user_ids(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """People whose end date has come and who still have access, earliest first (a range of
    the ix_users_access_end_due index)."""
    return list(session.scalars(due_query(now=now, limit=limit)))


def due_query(*, now: datetime, limit: int) -> Select[uuid.UUID]:
    return select(User.id).where(*_due_now(now)).order_by(User.access_ends_at).limit(limit)


def _due_now(now: datetime) -> tuple[Any, ...]:
    """People whose date has come, with access still, whose revocation the gate does not
    hold already (they wait for an admin, not for the next beat)."""
    held = (
        select(MassChange.id)
        .where(
            MassChange.user_id == User.id,
            MassChange.status == ChangeStatus.HELD,
            MassChange.source == SCHEDULE,
        )
        .exists()
    )
    return (
        User.status.in_(ENDING),
        User.access_ends_at.is_not(None),
        User.access_ends_at <= now,
        ~held,
    )


def announce_due(session: Session, *, now: datetime, actor: Actor) -> None:
    """Tell the mass-change gate how many people each organisation's dates revoke now, so a
    batch over its thresholds is held whole before the first of them is revoked."""
    counts = session.execute(
        select(User.organisation_id, func.count())
        .where(*_due_now(now))
        .group_by(User.organisation_id)
    )
    for organisation_id, due in counts.all():
        mass_change.expect(session, organisation_id=organisation_id, changes=due, actor=actor)


def end_access(
    session: Session, *, user_id: uuid.UUID, now: datetime, actor: Actor
) -> lifecycle.Outcome:
    """Revoke this person if their end date has come (APPLIED), or have the mass-change gate
    hold it (HELD); UNCHANGED when another run holds them, did it already, or the date
    moved. The row lock makes several runs revoke once."""
    user = session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if user is not None:
        person_lock.mark_read_locked(session, [user.id])
    ends_at = user.access_ends_at if user is not None else None
    if user is None or user.status not in ENDING or ends_at is None or not _due(ends_at, now):
        return lifecycle.Outcome.UNCHANGED
    reason = lifecycle.ended_access_reason(ends_at, user.access_ends_source)
    gate = mass_change.GateRequest(ChangeKind.DEACTIVATE, reason=reason)
    return lifecycle.set_active(
        session, user=user, active=False, actor=actor, reason=reason, gate=gate
    )


def _due(ends_at: datetime | None, now: datetime) -> bool:
    return ends_at is not None and ends_at <= now


def _may_change(user: User, ends_at: datetime | None, source: Source) -> bool:
    """A source moves or clears the date it set, and any source sets one where there is none.
    Over another source's date it may only bring the end earlier: two sources that disagree
    then settle on the earlier date instead of taking turns, and no source extends someone's
    access over the source that ended it. An admin may do anything."""
    set_by = user.access_ends_source
    if source is Source.ADMIN or set_by is None or set_by is source:
        return True
    current = user.access_ends_at
    return ends_at is not None and current is not None and ends_at < current


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _audit(session: Session, user: User, actor: Actor, *, before: datetime | None) -> None:
    after = user.access_ends_at
    if before is None:
        action = "user.access_end_set"
    elif after is None:
        action = "user.access_end_cleared"
    else:
        action = "user.access_end_changed"
    # A date still to come that moves later or goes away: the revocation it promised is off.
    cancels = (
        before is not None
        and user.status in ENDING
        and (after is None or after > max(before, utcnow()))
    )
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action=action,
        target_type="user",
        before={"access_ends_at": _iso(before)},
        after={
            "access_ends_at": _iso(after),
            "set_by": actor.source.value if after else None,
            **({"cancelled_revocation_at": _iso(before)} if cancels else {}),
        },
    )
