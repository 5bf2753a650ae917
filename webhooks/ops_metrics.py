"""Prometheus gauges read from the database at scrape time: the outbox backlog, invalidations
waiting on the gateway and those past their deadline, notification deliveries failing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.db import SessionFactory
from models.queries.operations import operational_stats


class OperationsCollector(Collector):
    def __init__(self, sessions: SessionFactory, deadline: float) -> None:
        self.sessions, self.deadline = sessions, timedelta(seconds=deadline)

    def collect(self) -> Iterator[Any]:
        try:
            with self.sessions() as session:
                stats = operational_stats(session, deadline=self.deadline)
        except Exception:  # a scrape must not fail because the database is away
            return
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
        failing = GaugeMetricFamily(
            "odock_notification_deliveries_failing",
            "Notification deliveries whose last attempt failed: retrying, or given up",
            labels=["state"],
        )
        failing.add_metric(["retrying"], stats.deliveries_retrying)
        failing.add_metric(["failed"], stats.deliveries_failed)
        yield failing
