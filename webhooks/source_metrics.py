"""Prometheus figures of sources and runs, read from the database at scrape time (see
models.queries.ops_stats): directory runs, changes applied and withheld, what waits for an
admin, open findings, source silence and incidents, audit stream lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.base import utcnow
from models.db import SessionFactory
from models.queries.ops_stats import ops_stats


def _gauge(name: str, doc: str, labels: list[str], values: dict[Any, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class SourceCollector(Collector):
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Any]:
        try:
            with self.sessions() as session:
                stats = ops_stats(session, now=utcnow())
                session.rollback()
        except Exception:  # a scrape must not fail because the database is away
            return
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
