"""Departure notices: some days before a person's end date (the organisation's
`departure_notice_days`), their managers and the owners of the keys it will touch are told
what the revocation will do (the blast-radius preview), and a review opens early so the keys,
budgets and quotas left behind can be handed over before the day.

One notice per end date: `users.departure_notice_for` remembers the date it was sent for, so a
date moved later (or earlier) arms a new one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import audit
from models.access import Viewer
from models.actions import access_reviews, reviews
from models.actions.access_end import ENDING
from models.actor import Actor
from models.entities import (
    OrganisationSettings,
    RevocationReview,
    ScimUser,
    TeamMembership,
    User,
)
from models.errors import InvalidInput
from models.notifications import notify
from models.queries.reviews import revocation_preview

EVENT = "access.departure_notice"
MAX_NOTICE_DAYS = 90  # the longest notice an organisation may ask for


def due_notice_ids(session: Session, *, now: datetime) -> list[uuid.UUID]:
    """People whose notice is due and not yet sent for their current date (a range of the
    end-date index: only dates within the longest notice are read)."""
    rows = session.execute(
        select(User.id, User.access_ends_at, OrganisationSettings.departure_notice_days)
        .join(OrganisationSettings, OrganisationSettings.organisation_id == User.organisation_id)
        .where(
            User.status.in_(ENDING),
            User.access_ends_at.is_not(None),
            User.access_ends_at > now,
            User.access_ends_at <= now + timedelta(days=MAX_NOTICE_DAYS),
            or_(
                User.departure_notice_for.is_(None),
                User.departure_notice_for != User.access_ends_at,
            ),
        )
        .order_by(User.access_ends_at)
    )
    return [user_id for user_id, ends_at, days in rows if _notice_due(ends_at, days, now)]


def send_notice(session: Session, *, user_id: uuid.UUID, now: datetime, actor: Actor) -> bool:
    """Notify and open the early review, once for this end date; False when not (or no
    longer) due, or another run holds the person."""
    user = session.scalar(select(User).where(User.id == user_id).with_for_update(skip_locked=True))
    if user is None or user.status not in ENDING or user.access_ends_at is None:
        return False
    ends_at = user.access_ends_at
    settings = session.get_one(OrganisationSettings, user.organisation_id)
    if user.departure_notice_for == ends_at or not _notice_due(
        ends_at, settings.departure_notice_days, now
    ):
        return False
    preview = revocation_preview(session, Viewer.operator(user.organisation_id), user.id)
    review = _departure_review(session, user, actor)
    recipients = _recipients(session, user, preview)
    payload = _payload(user, ends_at, settings.departure_notice_days, review, preview)
    notify(
        session,
        organisation_id=user.organisation_id,
        event=EVENT,
        payload=payload,
        recipient_user_ids=recipients,
    )
    user.departure_notice_for = ends_at
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action="user.departure_notice_sent",
        target_type="user",
        after={
            "access_ends_at": ends_at.isoformat(),
            "recipients": [str(r) for r in recipients],
            "review_id": payload["review_id"],
        },
    )
    return True


def set_notice_days(
    session: Session, *, settings: OrganisationSettings, days: int, actor: Actor
) -> None:
    """How many days before an end date the organisation's notice goes out (0: on the day)."""
    if not 0 <= days <= MAX_NOTICE_DAYS:
        raise InvalidInput(
            f"departure notice days must be 0 to {MAX_NOTICE_DAYS}", field="departure_notice_days"
        )
    before = settings.departure_notice_days
    settings.departure_notice_days = days
    audit.record(
        session,
        actor=actor,
        organisation_id=settings.organisation_id,
        action="organisation.departure_notice_days_set",
        target_type="organisation",
        target_id=settings.organisation_id,
        before={"departure_notice_days": before},
        after={"departure_notice_days": days},
    )


def _departure_review(session: Session, user: User, actor: Actor) -> RevocationReview | None:
    """The review of this departure: the one still open from a notice for an earlier date
    (the date moved within the notice: the same departure), brought up to what the person
    holds now, else a new one."""
    review = reviews.open_departure_review(session, user)
    if review is None:
        return access_reviews.review_departure(session, user=user, actor=actor)
    assert user.access_ends_at is not None
    review.context = {**review.context, "access_ends_at": user.access_ends_at.isoformat()}
    # Keys, budgets and quotas the person took on since the first notice are listed too.
    access_reviews.refresh_departure(session, review=review, user=user, actor=actor)
    return review


def _notice_due(ends_at: datetime | None, days: int, now: datetime) -> bool:
    if ends_at is None or ends_at <= now:
        return False
    return ends_at - timedelta(days=max(0, min(days, MAX_NOTICE_DAYS))) <= now


def _payload(
    user: User, ends_at: datetime, days: int, review: Any, preview: dict[str, Any]
) -> dict[str, Any]:
    return {
        "user": {"id": str(user.id), "email": user.email, "name": user.name},
        "access_ends_at": ends_at.isoformat(),
        "notice_days": days,
        "message": f"{user.email}'s access ends at {ends_at.isoformat()}",
        "review_id": str(review.id) if review is not None else None,
        "preview": preview,
    }


def _recipients(session: Session, user: User, preview: dict[str, Any]) -> list[uuid.UUID]:
    """The person's managers (of their teams, and their directory manager) and the owners of
    the keys the revocation touches: the teams' managers for team keys, admins for org keys."""
    teams = set(
        session.scalars(select(TeamMembership.team_id).where(TeamMembership.user_id == user.id))
    )
    teams |= {uuid.UUID(key["team_id"]) for key in preview["team_keys"] if key["team_id"]}
    recipients = reviews.team_manager_ids(session, teams, exclude=user.id)
    recipients += _directory_manager(session, user)
    if preview["org_keys"]:
        recipients += reviews.admin_ids(session, user.organisation_id, exclude=user.id)
    return list(dict.fromkeys(recipients))


def _directory_manager(session: Session, user: User) -> list[uuid.UUID]:
    """The manager the IdP names for this person over SCIM, if they are still here."""
    manager_scim_id = session.scalar(select(ScimUser.manager_id).where(ScimUser.user_id == user.id))
    if not manager_scim_id:
        return []
    try:
        manager_key = uuid.UUID(manager_scim_id)
    except ValueError:
        return []
    manager = session.scalar(
        select(User)
        .join(ScimUser, ScimUser.user_id == User.id)
        .where(ScimUser.id == manager_key, User.status.in_(ENDING))
    )
    return [manager.id] if manager is not None and manager.id != user.id else []
