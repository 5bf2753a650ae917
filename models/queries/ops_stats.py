"""Figures for Prometheus, read from the database at scrape time: directory runs, changes
applied and withheld, what waits for an admin, open findings, source silence, stream lag."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models.entities import (
    AuditEvent,
    AuditStream,
    DirectorySyncRun,
    MassChange,
    Organisation,
    ReviewFinding,
    SourceIncident,
)
from models.enums import ChangeStatus, SyncRunStatus
from models.source_health import source_statuses

APPLIED_RUNS = (SyncRunStatus.SUCCEEDED, SyncRunStatus.APPROVED)
WITHHELD_RUNS = (SyncRunStatus.QUARANTINED, SyncRunStatus.DISCARDED)
CHANGE_KINDS = ("created", "updated", "revoked", "reactivated")


@dataclass(frozen=True)
class StreamLag:
    organisation: str
    stream: str
    events: int
    seconds: float
    failing: bool


@dataclass
class OpsStats:
    runs_by_status: dict[str, int] = field(default_factory=dict)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, outcome)
    mass_changes_by_status: dict[str, int] = field(default_factory=dict)
    quarantines_pending: int = 0
    findings_open: int = 0
    source_quiet: dict[tuple[str, str], float] = field(default_factory=dict)
    incidents_open: dict[tuple[str, str], int] = field(default_factory=dict)
    stream_lag: list[StreamLag] = field(default_factory=list)


def ops_stats(session: Session, *, now: datetime) -> OpsStats:
    stats = OpsStats()
    for status, count in session.execute(
        select(DirectorySyncRun.status, func.count()).group_by(DirectorySyncRun.status)
    ):
        stats.runs_by_status[SyncRunStatus(status).value] = count
    for outcome, statuses in (("applied", APPLIED_RUNS), ("withheld", WITHHELD_RUNS)):
        sums = session.execute(
            select(
                *(
                    func.coalesce(func.sum(getattr(DirectorySyncRun, f"{k}_count")), 0)
                    for k in CHANGE_KINDS
                )
            ).where(DirectorySyncRun.status.in_(statuses), DirectorySyncRun.dry_run.is_(False))
        ).one()
        for kind, total in zip(CHANGE_KINDS, sums, strict=True):
            stats.changes[(kind, outcome)] = int(total)
    for change_status, count in session.execute(
        select(MassChange.status, func.count()).group_by(MassChange.status)
    ):
        stats.mass_changes_by_status[ChangeStatus(change_status).value] = count
    stats.quarantines_pending = stats.runs_by_status.get(
        SyncRunStatus.QUARANTINED.value, 0
    ) + stats.mass_changes_by_status.get(ChangeStatus.HELD.value, 0)
    stats.findings_open = (
        session.scalar(
            select(func.count())
            .select_from(ReviewFinding)
            .where(ReviewFinding.resolved_at.is_(None))
        )
        or 0
    )
    organisations = session.execute(select(Organisation.id, Organisation.slug)).all()
    for organisation_id, slug in organisations:
        for health in source_statuses(session, organisation_id=organisation_id, now=now):
            stats.source_quiet[(slug, health.source)] = health.quiet_for(now)
    for slug, source in session.execute(
        select(Organisation.slug, SourceIncident.source)
        .join(Organisation, Organisation.id == SourceIncident.organisation_id)
        .where(SourceIncident.cleared_at.is_(None))
    ):
        stats.incidents_open[(slug, source)] = 1
    stats.stream_lag = _stream_lag(session, now)
    return stats


def _stream_lag(session: Session, now: datetime) -> list[StreamLag]:
    """Per enabled stream: events not yet accepted (numbered or still waiting for a number)
    and the age of the oldest of them."""
    rows = session.execute(
        select(AuditStream, Organisation.slug)
        .join(Organisation, Organisation.id == AuditStream.organisation_id)
        .where(AuditStream.enabled.is_(True))
    ).all()
    lags = []
    for stream, slug in rows:
        behind = (
            AuditEvent.organisation_id == stream.organisation_id,
            or_(AuditEvent.seq > stream.cursor_seq, AuditEvent.seq.is_(None)),
        )
        count, oldest = session.execute(
            select(func.count(), func.min(AuditEvent.occurred_at)).where(*behind)
        ).one()
        age = (now - oldest).total_seconds() if oldest else 0.0
        lags.append(
            StreamLag(
                slug, stream.name, int(count), max(0.0, age), stream.first_failure_at is not None
            )
        )
    return lags
