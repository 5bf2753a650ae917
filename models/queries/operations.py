"""What an operator watches, read at scrape time for /metrics: work waiting to leave
odock-sync and cut-offs waiting on the gateway (operational_stats); directory runs, changes
applied and withheld, what waits for an admin, open findings, source silence and audit stream
lag (source_stats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.entities import (
    AuditEvent,
    AuditStream,
    DirectorySyncRun,
    KeyCutoff,
    MassChange,
    NotificationDelivery,
    Organisation,
    OutboxMessage,
    ReviewFinding,
    SourceIncident,
)
from models.entities.cutoff import PROOF_COMMAND
from models.enums import APPLIED_RUN_STATUSES, ChangeStatus, DeliveryStatus, SyncRunStatus
from models.source_health import source_statuses

WITHHELD_RUNS = (SyncRunStatus.QUARANTINED, SyncRunStatus.DISCARDED)
CHANGE_KINDS = ("created", "updated", "revoked", "reactivated")


@dataclass(frozen=True)
class OperationalStats:
    outbox_backlog: int
    outbox_oldest_age: float
    pending_invalidations: int
    pending_oldest_age: float
    past_deadline: int
    deliveries_retrying: int
    deliveries_failed: int


def operational_stats(
    session: Session, *, deadline: timedelta, now: datetime | None = None
) -> OperationalStats:
    now = now or utcnow()
    backlog, oldest_message = session.execute(
        select(func.count(OutboxMessage.id), func.min(OutboxMessage.available_at)).where(
            OutboxMessage.completed_at.is_(None), OutboxMessage.available_at <= now
        )
    ).one()
    # A re-invalidation planned for later is not pending yet; a proof of revocation (asked
    # after the invalidation) is no invalidation, though past its deadline it is overdue.
    unacknowledged = KeyCutoff.acknowledged_at.is_(None) & (KeyCutoff.requested_at <= now)
    pending = unacknowledged & (KeyCutoff.command != PROOF_COMMAND)
    pending_count, oldest_cutoff = session.execute(
        select(func.count(KeyCutoff.id), func.min(KeyCutoff.requested_at)).where(pending)
    ).one()
    overdue = session.scalar(
        select(func.count(KeyCutoff.id)).where(
            unacknowledged, KeyCutoff.requested_at <= now - deadline
        )
    )
    deliveries = dict(
        session.execute(
            select(NotificationDelivery.status, func.count(NotificationDelivery.id))
            .where(
                (NotificationDelivery.status == DeliveryStatus.FAILED)
                | (
                    (NotificationDelivery.status == DeliveryStatus.PENDING)
                    & (NotificationDelivery.attempts > 0)
                )
            )
            .group_by(NotificationDelivery.status)
        ).all()
    )
    return OperationalStats(
        outbox_backlog=int(backlog),
        outbox_oldest_age=_age(now, oldest_message),
        pending_invalidations=int(pending_count),
        pending_oldest_age=_age(now, oldest_cutoff),
        past_deadline=int(overdue or 0),
        deliveries_retrying=int(deliveries.get(DeliveryStatus.PENDING, 0)),
        deliveries_failed=int(deliveries.get(DeliveryStatus.FAILED, 0)),
    )


def _age(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())


@dataclass(frozen=True)
class StreamLag:
    organisation: str
    stream: str
    events: int
    seconds: float
    failing: bool


@dataclass
class SourceStats:
    runs_by_status: dict[str, int] = field(default_factory=dict)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, outcome)
    mass_changes_by_status: dict[str, int] = field(default_factory=dict)
    quarantines_pending: int = 0
    findings_open: int = 0
    source_quiet: dict[tuple[str, str], float] = field(default_factory=dict)
    incidents_open: dict[tuple[str, str], int] = field(default_factory=dict)
    stream_lag: list[StreamLag] = field(default_factory=list)


def source_stats(session: Session, *, now: datetime) -> SourceStats:
    stats = SourceStats()
    for status, count in session.execute(
        select(DirectorySyncRun.status, func.count()).group_by(DirectorySyncRun.status)
    ):
        stats.runs_by_status[SyncRunStatus(status).value] = count
    for outcome, statuses in (("applied", APPLIED_RUN_STATUSES), ("withheld", WITHHELD_RUNS)):
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
    """The backlog of every enabled stream, for the metrics."""
    rows = session.execute(
        select(AuditStream, Organisation.slug)
        .join(Organisation, Organisation.id == AuditStream.organisation_id)
        .where(AuditStream.enabled.is_(True))
    ).all()
    lags = []
    for stream, slug in rows:
        backlog = stream_backlog(session, stream, now=now)
        lags.append(
            StreamLag(
                slug,
                stream.name,
                backlog.events,
                backlog.seconds,
                stream.first_failure_at is not None,
            )
        )
    return lags


@dataclass(frozen=True)
class StreamBacklog:
    events: int
    seconds: float


def stream_backlog(session: Session, stream: AuditStream, *, now: datetime) -> StreamBacklog:
    """Events not yet accepted by the stream (numbered or still waiting for a number) and the
    age of the oldest of them."""
    behind = (
        AuditEvent.organisation_id == stream.organisation_id,
        or_(AuditEvent.seq > stream.cursor_seq, AuditEvent.seq.is_(None)),
    )
    count, oldest = session.execute(
        select(func.count(), func.min(AuditEvent.occurred_at)).where(*behind)
    ).one()
    return StreamBacklog(int(count), _age(now, oldest))
