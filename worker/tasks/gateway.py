"""Gateway cache invalidation, retried until the gateway acknowledges."""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import Histogram

from connectors import gateway
from models.actions.reviews import record_invalidation
from worker.runtime import runtime
from worker.tasks.base import TransientError, task

log = structlog.get_logger(__name__)

TIME_TO_KILL = Histogram(
    "odock_time_to_kill_seconds",
    "From a revocation arriving at odock-sync to the gateway acknowledging its invalidation",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)


@task("gateway.invalidate_keys")
def invalidate_keys(
    key_ids: list[str], reason: str = "", source: str = "", arrived_at: float | None = None
) -> None:
    """`arrived_at` (epoch seconds) is when the revocation that queued this arrived."""
    settings = runtime().settings
    if not settings.gateway_url:
        log.warning("gateway.not_configured", keys=len(key_ids), reason=reason)
        return
    try:
        gateway.invalidate_keys(
            base_url=settings.gateway_url,
            secret=settings.gateway_secret,
            key_ids=key_ids,
            timeout=settings.gateway_timeout,
            policy=settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        raise TransientError(str(exc)) from exc
    if arrived_at is not None:
        TIME_TO_KILL.labels(source or "unknown").observe(max(0.0, time.time() - arrived_at))
    with runtime().sessions() as session:
        record_invalidation(session, key_ids=[uuid.UUID(k) for k in key_ids], reason=reason)
        session.commit()
    log.info("gateway.invalidated", keys=len(key_ids), reason=reason)
