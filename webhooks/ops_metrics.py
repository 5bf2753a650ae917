"""Prometheus gauges read from the database at scrape time, in one collector: the outbox
backlog, invalidations waiting on the gateway and past their deadline, notification deliveries
failing; directory runs, changes applied and withheld, what waits for an admin, open findings,
source silence and incidents, audit stream lag (models.queries.operations)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.base import utcnow
from models.db import SessionFactory
from models.queries.operations import (
    OperationalStats,
    SourceStats,
    operational_stats,
    source_stats,
)


def _gauge(name: str, doc: str, labels: list[str], values: dict[Any, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class OperationsCollector(Collector):
    def __init__(self, sessions: SessionFactory, deadline: float) -> None:
        self.sessions, self.deadline = sessions, timedelta(seconds=deadline)

    def collect(self) -> Iterator[Any]:
        try:
            with self.sessions() as session:
                now = utcnow()
                operations = operational_stats(session, deadline=self.deadline, now=now)
                sources = source_stats(session, now=now)
                session.rollback()
        except Exception:  # a scrape must not fail because the database is away
            return
        yield from _operations(operations)
        yield from _sources(sources)


def _operations(stats: OperationalStats) -> Iterator[GaugeMetricFamily]:
    figures = [
        ("odock_outbox_backlog", "Outbox messages not yet completed", stats.outbox_backlog),
        (
            "odock_outbox_oldest_age_seconds",
            "Age of the oldest outbox message not yet completed",
            stats.outbox_oldest_age,
        ),
        (
            "odock_invalidations_pending",
            "Key invalidations the gateway has not acknowledged",
            stats.pending_invalidations,
        ),
        (
            "odock_invalidation_oldest_pending_seconds",
            "Age of the oldest key invalidation the gateway has not acknowledged",
            stats.pending_oldest_age,
        ),
        (
            "odock_cutoffs_past_deadline",
            "Key invalidations pending for longer than CUTOFF_DEADLINE",
            stats.past_deadline,
        ),
    ]
    for name, documentation, value in figures:
        yield GaugeMetricFamily(name, documentation, value=value)
    yield _gauge(
        "odock_notification_deliveries_failing",
        "Notification deliveries whose last attempt failed: retrying, or given up",
        ["state"],
        {"retrying": stats.deliveries_retrying, "failed": stats.deliveries_failed},
    )


def _sources(stats: SourceStats) -> Iterator[GaugeMetricFamily]:
    yield _gauge(
        "odock_directory_runs",
        "Directory sync runs by status",
        ["status"],
        dict(stats.runs_by_status),
    )
    yield _gauge(
        "odock_directory_changes",
        "People changed by directory runs: applied, or withheld (quarantined, discarded)",
        ["kind", "outcome"],
        dict(stats.changes),
    )
    yield _gauge(
        "odock_mass_changes",
        "Counted destructive changes by status",
        ["status"],
        dict(stats.mass_changes_by_status),
    )
    yield _gauge(
        "odock_quarantines_pending",
        "Quarantined runs and held changes waiting for an admin",
        [],
        {(): stats.quarantines_pending},
    )
    yield _gauge(
        "odock_review_findings_open",
        "Review findings not resolved",
        [],
        {(): stats.findings_open},
    )
    yield _gauge(
        "odock_source_silence_seconds",
        "Seconds since each configured source's last sign of life (streams: failing for)",
        ["organisation", "source"],
        dict(stats.source_quiet),
    )
    yield _gauge(
        "odock_source_incidents_open",
        "Sources silent or failing beyond their allowance",
        ["organisation", "source"],
        dict(stats.incidents_open),
    )
    yield _gauge(
        "odock_audit_stream_lag_events",
        "Audit events a stream has not delivered yet",
        ["organisation", "stream"],
        {(lag.organisation, lag.stream): lag.events for lag in stats.stream_lag},
    )
    yield _gauge(
        "odock_audit_stream_lag_seconds",
        "Age of the oldest audit event a stream has not delivered yet",
        ["organisation", "stream"],
        {(lag.organisation, lag.stream): lag.seconds for lag in stats.stream_lag},
    )
