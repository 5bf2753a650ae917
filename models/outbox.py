"""Recording side effects in the caller's transaction; a relay hands them to Celery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.base import utcnow
from models.entities import OutboxMessage

NEW_MESSAGES_KEY = "odock.outbox.new"
EAGER_MESSAGES_KEY = "odock.outbox.eager"


def enqueue(
    session: Session,
    task: str,
    *,
    available_at: datetime | None = None,
    eager: bool = False,
    **kwargs: Any,
) -> OutboxMessage:
    """Schedule `task(**kwargs)` to run once this transaction commits (and never if it fails).

    `eager` is for hot paths: the row is written already marked as dispatched and is published
    right after commit without a second transaction; a failed publish hands it back to the
    relay at once, and one lost in between is re-sent by the relay's stale-dispatch sweep.
    """
    now = utcnow()
    message = OutboxMessage(task=task, kwargs=kwargs, available_at=available_at or now)
    if eager:
        message.dispatched_at, message.attempts = now, 1
    session.add(message)
    session.info.setdefault(EAGER_MESSAGES_KEY if eager else NEW_MESSAGES_KEY, []).append(message)
    return message


def take_new_messages(session: Session) -> list[OutboxMessage]:
    """The messages this session enqueued since the last call (used after commit)."""
    return session.info.pop(NEW_MESSAGES_KEY, [])


def take_eager_messages(session: Session) -> list[OutboxMessage]:
    return session.info.pop(EAGER_MESSAGES_KEY, [])
