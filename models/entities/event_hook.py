"""Per-organisation IdP event hooks: their secrets, and how far each user's events got."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column
from models.enums import Source


class EventHookConfig(Timestamped, Base):
    """The Okta hook's authorization header (hashed) and the generic events' signing secrets.

    `signing_secrets` is a list of {"id", "secret" (encrypted), "created_at"}: several are
    valid at once so a sender can rotate without dropping deliveries.
    """

    __tablename__ = "event_hook_configs"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    okta_header_name: Mapped[str] = mapped_column(String(100), default="Authorization")
    okta_secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    okta_custom_header_name: Mapped[str | None] = mapped_column(String(100), default=None)
    okta_custom_header_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    signing_secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class EventCursor(Base):
    """The newest event applied to one aspect of one user from one source (ordering guard).

    An aspect is `status`, `profile` or `team:<name>`: an older event about the same aspect
    arriving late is not applied, while events about different aspects never block each other.
    """

    __tablename__ = "event_cursors"
    __table_args__ = (UniqueConstraint("user_id", "source", "aspect"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[Source] = enum_column(Source)
    aspect: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(String(255))
