"""Directory connectors (LDAP, Active Directory), their sync runs and the sync leases."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import SyncKind, SyncRunStatus


class DirectoryConnector(Timestamped, Base):
    """Where one organisation's directory is and how its people map to users and teams."""

    __tablename__ = "directory_connectors"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(default=True)
    server_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    start_tls: Mapped[bool] = mapped_column(default=False)
    ca_file: Mapped[str] = mapped_column(String(500), default="")
    verify_tls: Mapped[bool] = mapped_column(default=True)
    bind_dn: Mapped[str] = mapped_column(String(500), default="")
    bind_password_encrypted: Mapped[str] = mapped_column(Text, default="")
    base_dn: Mapped[str] = mapped_column(String(500))
    user_filter: Mapped[str] = mapped_column(String(1000), default="")
    group_base_dn: Mapped[str] = mapped_column(String(500), default="")
    group_filter: Mapped[str] = mapped_column(String(1000), default="")
    page_size: Mapped[int] = mapped_column(default=500)
    connect_timeout: Mapped[float] = mapped_column(default=5.0)
    search_timeout: Mapped[float] = mapped_column(default=60.0)
    full_sync_minutes: Mapped[int] = mapped_column(default=60)
    incremental_minutes: Mapped[int] = mapped_column(default=5)
    preset: Mapped[str] = mapped_column(String(32), default="openldap")
    attribute_mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    group_teams: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    group_roles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # a key of group_teams or group_roles -> the stable id of the group it named when a sync
    # first found it, by which later syncs find it renamed or moved (connectors.ldap.group_links)
    group_ids: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # thresholds and policies of the sync's destructive changes (models/directory/safety.py)
    safety: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    watermark: Mapped[str] = mapped_column(String(64), default="")
    last_full_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_incremental_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    full_scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    incremental_scheduled_at: Mapped[datetime | None] = mapped_column(default=None)


RUNNING = "status = 'running'"
# as models/source_health.py asks for it, so the planner can prove the index applies
SUCCEEDED = "status IN ('succeeded', 'approved') AND dry_run IS false"


class DirectorySyncRun(Base):
    """One sync of one connector: what it read, what it planned, what it did."""

    __tablename__ = "directory_sync_runs"
    __table_args__ = (
        Index("ix_directory_sync_runs_connector", "connector_id", "started_at"),
        # Partial: a handful of rows among a year's runs (an incremental sync every 5 minutes).
        # The running runs, for the reaper; a connector's latest successful run (source health).
        Index(
            "ix_directory_sync_runs_running",
            "connector_id",
            postgresql_where=text(RUNNING),
            sqlite_where=text(RUNNING),
        ),
        Index(
            "ix_directory_sync_runs_succeeded",
            "connector_id",
            "finished_at",
            postgresql_where=text(SUCCEEDED),
            sqlite_where=text(SUCCEEDED),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("directory_connectors.id", ondelete="CASCADE")
    )
    kind: Mapped[SyncKind] = enum_column(SyncKind)
    status: Mapped[SyncRunStatus] = enum_column(SyncRunStatus, default=SyncRunStatus.RUNNING)
    dry_run: Mapped[bool] = mapped_column(default=False)
    trigger: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
    read_count: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    revoked_count: Mapped[int] = mapped_column(default=0)
    reactivated_count: Mapped[int] = mapped_column(default=0)
    unchanged_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str] = mapped_column(String(64), default="")
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    decided_by: Mapped[str] = mapped_column(String(255), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)


class SyncLease(Base):
    """A named lease held until it expires: the lock when there is no Redis."""

    __tablename__ = "sync_leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
