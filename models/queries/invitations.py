"""Read models for the Enrollment tab: the invitations table and one invitation's detail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.actions.invitations import (
    effective_status,
    get_invitation,
    require_can_invite,
    status_condition,
    visible_invitations,
)
from models.base import utcnow
from models.entities import Invitation, InvitationDelivery
from models.enums import InvitationStatus
from models.queries.users import Page

MAX_PAGE = 200


@dataclass(frozen=True)
class InvitationFilter:
    status: InvitationStatus | None = None
    search: str | None = None


def list_invitations(
    session: Session,
    viewer: Viewer,
    filters: InvitationFilter,
    *,
    limit: int = 50,
    after: uuid.UUID | None = None,
) -> Page:
    """Invitations the viewer may see, newest first, keyset-paginated by id."""
    require_can_invite(viewer)
    now = utcnow()
    query = select(Invitation).where(visible_invitations(viewer))
    if filters.status:
        query = query.where(status_condition(filters.status, now))
    if filters.search:
        pattern = "%" + _escape_like(filters.search.strip().lower()) + "%"
        query = query.where(Invitation.email_key.like(pattern, escape="\\"))
    if after:
        query = query.where(Invitation.id < after)
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(session.scalars(query.order_by(Invitation.id.desc()).limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=[invitation_view(row, now) for row in rows[:limit]], next_cursor=next_cursor)


def invitation_detail(session: Session, viewer: Viewer, invitation_id: uuid.UUID) -> dict[str, Any]:
    """One invitation with its delivery history (every attempt of every send)."""
    invitation = get_invitation(session, viewer, invitation_id)
    deliveries = session.scalars(
        select(InvitationDelivery)
        .where(InvitationDelivery.invitation_id == invitation.id)
        .order_by(InvitationDelivery.occurred_at, InvitationDelivery.id)
    )
    return {**invitation_view(invitation), "deliveries": [delivery_view(d) for d in deliveries]}


def invitation_view(invitation: Invitation, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": str(invitation.id),
        "email": invitation.email,
        "role": invitation.role.value,
        "teams": invitation.teams,
        "status": effective_status(invitation, now or utcnow()).value,
        "expires_at": _iso(invitation.expires_at),
        "invited_by": {
            "user_id": str(invitation.invited_by_user_id)
            if invitation.invited_by_user_id
            else None,
            "name": invitation.invited_by_name,
        },
        "created_at": _iso(invitation.created_at),
        "last_sent_at": _iso(invitation.last_sent_at),
        "send_count": invitation.send_count,
        "resend_count": invitation.resend_count,
        "accepted_at": _iso(invitation.accepted_at),
        "accepted_by_user_id": (
            str(invitation.accepted_by_user_id) if invitation.accepted_by_user_id else None
        ),
        "revoked_at": _iso(invitation.revoked_at),
    }


def delivery_view(delivery: InvitationDelivery) -> dict[str, Any]:
    return {
        "send_number": delivery.send_number,
        "attempt": delivery.attempt,
        "status": delivery.status,
        "detail": delivery.detail,
        "recipient": delivery.recipient,
        "occurred_at": _iso(delivery.occurred_at),
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
