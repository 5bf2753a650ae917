"""Asking for a notification: recorded in the caller's transaction, delivered by the worker.

The worker task `notifications.dispatch` fans an event out to the organisation's notification
hooks (signed webhooks, Slack-compatible, email) and to the people named as recipients.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from models import outbox
from models.base import new_id

TASK_DISPATCH = "notifications.dispatch"


def notify(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    event: str,
    payload: dict[str, Any],
    recipient_user_ids: list[uuid.UUID] | None = None,
) -> str:
    """Queue one notification event; its id makes every delivery of it idempotent."""
    event_id = str(new_id())
    outbox.enqueue(
        session,
        TASK_DISPATCH,
        event_id=event_id,
        organisation_id=str(organisation_id),
        event=event,
        payload=payload,
        recipient_user_ids=[str(u) for u in recipient_user_ids or []],
    )
    return event_id
