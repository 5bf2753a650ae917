"""What the inbound Odock bridge keeps besides the objects: tombstones of deleted objects, the
organisation's event signing secrets, and the runs of the reconcile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class UnseenInListings:
    """Whether the management plane's complete listings have lately lacked the object (a key,
    budget or quota held from Odock). A listing that lacks an object is no proof that it is
    gone (offset paging skips an item when another is deleted between two page reads; a
    replica may lag): the object is kept, and kept in every revocation, until
    ODOCK_FORGET_AFTER_LISTINGS consecutive complete listings have lacked it."""

    unseen_since: Mapped[datetime | None] = mapped_column(default=None)
    unseen_listings: Mapped[int] = mapped_column(default=0, server_default="0")


class OdockTombstone(Base):
    """A deleted key, budget or quota and the version it was deleted at, so that an older
    upsert arriving late does not bring it back."""

    __tablename__ = "odock_tombstones"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    object_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)


class OdockBridge(Base):
    """An organisation's side of the bridge: the secrets its change events are signed with."""

    __tablename__ = "odock_bridges"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    signing_secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OdockReconcileRun(Base):
    """One reconcile (or import) of an organisation's objects, with what it repaired."""

    __tablename__ = "odock_reconcile_runs"
    __table_args__ = (
        Index("ix_odock_reconcile_runs_org_started", "organisation_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))  # reconcile | import
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
