"""Recording side effects in the caller's transaction; a relay hands them to Celery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.base import utcnow
from models.entities import OutboxMessage

NEW_MESSAGES_KEY = "odock.outbox.new"


def enqueue(
    session: Session, task: str, *, available_at: datetime | None = None, **kwargs: Any
) -> OutboxMessage:
    """Schedule `task(**kwargs)` to run once this transaction commits (and never if it fails)."""
    message = OutboxMessage(task=task, kwargs=kwargs, available_at=available_at or utcnow())
    session.add(message)
    session.info.setdefault(NEW_MESSAGES_KEY, []).append(message)
    return message


def take_new_messages(session: Session) -> list[OutboxMessage]:
    """The messages this session enqueued since the last call (used after commit)."""
    return session.info.pop(NEW_MESSAGES_KEY, [])
