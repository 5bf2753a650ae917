"""Prometheus figures the worker produces, read from the database at scrape time: deliveries
by status, events applied, and the received -> applied lag of the last five minutes.

Built for each scrape on the scraping app's own sessions (webhooks/health.py), as the
operations figures are: a process may hold several apps, each on a database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from models.db import SessionFactory
from models.queries.deliveries import delivery_stats


class DeliveryCollector(Collector):
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Any]:
        try:
            with self.sessions() as session:
                stats = delivery_stats(session)
        except Exception:  # a scrape must not fail because the database is away
            return
        deliveries = GaugeMetricFamily(
            "odock_idp_deliveries", "Stored IdP event deliveries", labels=["channel", "status"]
        )
        for (channel, status), count in sorted(stats.by_status.items()):
            deliveries.add_metric([channel, status], count)
        applied = CounterMetricFamily(
            "odock_idp_events_applied", "IdP events applied to users", labels=["channel"]
        )
        for channel, count in sorted(stats.applied.items()):
            applied.add_metric([channel], count)
        lag = GaugeMetricFamily(
            "odock_idp_delivery_lag_seconds",
            "Received to applied, deliveries processed in the last 5 minutes",
            labels=["channel", "stat"],
        )
        for channel, (average, maximum) in sorted(stats.recent_lag_seconds.items()):
            lag.add_metric([channel, "avg"], average)
            lag.add_metric([channel, "max"], maximum)
        yield from (deliveries, applied, lag)
