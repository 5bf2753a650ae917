"""Mail kept on this machine instead of sent: the local outbox, used while SMTP_HOST is unset."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class LocalMail(Base):
    __tablename__ = "local_mail"
    __table_args__ = (Index("ix_local_mail_created", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), default=None
    )
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str] = mapped_column(String(255))
    # The bodies carry links that act as credentials (an enrollment link is a bearer token),
    # so they are sealed under SECRET_KEY as every secret we read back is.
    sealed_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
