"""Notification hooks of an organisation, and the log of every delivery and attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import DeliveryStatus, HookKind


class NotificationHook(Timestamped, Base):
    """Where an organisation wants events sent: a signed webhook, a Slack URL, an address."""

    __tablename__ = "notification_hooks"
    __table_args__ = (Index("ix_notification_hooks_org", "organisation_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[HookKind] = enum_column(HookKind)
    target: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Each: {"id", "sealed", "created_at", "expires_at"}; the secret itself is encrypted.
    signing_secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    first_failure_at: Mapped[datetime | None] = mapped_column(default=None)


class NotificationDelivery(Base):
    """One event to one destination (a hook or a person); idempotent by (event, target)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "target_key"),
        Index("ix_notification_deliveries_hook", "hook_id", "created_at"),
        Index("ix_notification_deliveries_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    target_key: Mapped[str] = mapped_column(String(400))
    hook_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("notification_hooks.id", ondelete="CASCADE"), default=None
    )
    review_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    recipient_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    recipient_email: Mapped[str | None] = mapped_column(String(320), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[DeliveryStatus] = enum_column(DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # A re-send by an admin starts a fresh budget of attempts from here.
    resends: Mapped[int] = mapped_column(default=0, server_default="0")
    attempts_at_resend: Mapped[int] = mapped_column(default=0, server_default="0")
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def attempts_since_resend(self) -> int:
        """The attempts of the current budget: what the retry limit and the backoff count."""
        return self.attempts - self.attempts_at_resend


class DeliveryAttempt(Base):
    """The log of one try: when, what came back, how long it took."""

    __tablename__ = "notification_delivery_attempts"
    __table_args__ = (Index("ix_notification_delivery_attempts_delivery", "delivery_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
