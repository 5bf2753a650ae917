"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from flask import Blueprint, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text

from models import arrival
from models.migrate import schema_problem
from webhooks.context import app_state
from webhooks.idp_metrics import DeliveryCollector
from webhooks.ops_metrics import OperationsCollector

log = structlog.get_logger(__name__)

SUPERVISOR_STATE_VARIABLE = "ODOCK_SUPERVISOR_STATE"  # written by `odock-sync serve`

bp = Blueprint("health", __name__)

REQUESTS = Counter("odock_http_requests_total", "HTTP requests answered", ["endpoint", "status"])
LATENCY = Histogram("odock_http_request_seconds", "Time to answer an HTTP request", ["endpoint"])


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """503 only without the database. Without the broker or with a child of `serve` being
    restarted the web still answers (the outbox keeps the work): 200, "degraded", and what."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    children = _supervised_children()
    checks.update({f"process:{name}": state for name, state in children.items()})
    degraded = sorted(name for name, result in checks.items() if result != "ok")
    if checks["database"] != "ok":
        return {"status": "unavailable", "checks": checks, "degraded": degraded}, 503
    status = "degraded" if degraded else "ready"
    return {"status": status, "checks": checks, "degraded": degraded}, 200


def _supervised_children() -> dict[str, str]:
    """The state of each process `serve` supervises ("ok", or why not), when run under it."""
    path = os.environ.get(SUPERVISOR_STATE_VARIABLE)
    if not path:
        return {}
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {
        name: "ok"
        if child.get("state") == "running"
        else f"restarting (exited {child.get('last_exit')}, {child.get('restarts')} restarts)"
        for name, child in state.get("children", {}).items()
    }


@bp.get("/metrics")
def metrics() -> Response:
    state = app_state()
    stored = CollectorRegistry()  # read from this app's database, not another app's
    stored.register(DeliveryCollector(state.sessions))
    stored.register(OperationsCollector(state.sessions, state.settings.cutoff_deadline))
    body = generate_latest(_registry()) + generate_latest(stored)
    # content_type, not mimetype: Flask would add a second charset to a text/ mimetype.
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _registry() -> Collector:
    """Every process's figures when they share a multiprocess directory, else this one's.

    The worker observes some figures (the time to kill access) that only the web serves, and
    gunicorn runs several web processes; prometheus_client's multiprocess mode, named by its
    own PROMETHEUS_MULTIPROC_DIR variable (`serve` sets one), adds them all up at scrape time.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def _check_database() -> str:
    """ "ok" only when the database answers with a schema this version can use: unmigrated,
    every request would fail."""
    try:
        with app_state().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            problem = schema_problem(connection)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return f"error: {problem}" if problem else "ok"


def _check_broker() -> str:
    from worker.celery_app import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


# (endpoint, status) -> its request counter and latency histogram: a metric's labels() takes
# a lock and checks its values on each call. Bounded by the routes and the statuses.
_METRICS: dict[tuple[str, int], tuple[Any, Any]] = {}


def _metrics_of(endpoint: str, status: int) -> tuple[Any, Any]:
    found = _METRICS.get((endpoint, status))
    if found is None:
        found = (REQUESTS.labels(endpoint, str(status)), LATENCY.labels(endpoint))
        _METRICS[(endpoint, status)] = found
    return found


def start_timer(state: Any) -> None:
    """The request's clock (`state` is its `g`)."""
    state.request_started = time.perf_counter()
    state.arrival = arrival.begin()  # a revocation this request makes started its clock now


def end_arrival(state: Any) -> None:
    token = state.pop("arrival", None)
    if token is not None:
        arrival.end(token)


def request_observer(log_level: str = "INFO") -> Callable[[Any, Request, Response], None]:
    """What counts and times each answered request (and logs it at INFO and below)."""
    # Whether the request's line is written at all: below INFO it is dropped, and building
    # its arguments and structlog's bound logger per request cost more than the metrics.
    log_requests = logging.getLevelName(log_level.upper()) <= logging.INFO

    def observe(state: Any, req: Request, response: Response) -> None:
        endpoint = req.endpoint or "unmatched"
        elapsed = time.perf_counter() - state.get("request_started", time.perf_counter())
        count, latency = _metrics_of(endpoint, response.status_code)
        count.inc()
        latency.observe(elapsed)
        if log_requests:
            # The route template, never the raw path or query: those may carry a secret
            # (an enrollment token in the path, a token someone put in the query string).
            log.info(
                "http.request",
                method=req.method,
                route=req.url_rule.rule if req.url_rule else "unmatched",
                status=response.status_code,
                duration_ms=round(elapsed * 1000, 2),
            )

    return observe
