"""Gateway cache invalidation with a deadline: called at once after commit, re-driven by the
reaper until the gateway acknowledges, alarmed once past the deadline (models/actions/cutoffs)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from prometheus_client import Counter, Histogram

from connectors import gateway
from models.actions import cutoffs
from models.actions.reviews import record_invalidation
from models.actor import Actor
from models.base import utcnow
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)

TIME_TO_KILL = Histogram(
    "odock_time_to_kill_seconds",
    "From a revocation arriving at odock-sync to the gateway acknowledging its invalidation",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)
GATEWAY_CALLS = Counter(
    "odock_gateway_invalidation_calls_total", "Gateway invalidation calls", ["outcome"]
)
DEADLINE_ALARMS = Counter(
    "odock_cutoff_deadline_alarms_total", "Alarms raised: cut-offs past their deadline"
)


# No Celery retries: a failed call leaves the cut-off due later, and the reaper calls again.
@task("gateway.invalidate_keys", autoretry_for=())
def invalidate_keys(
    key_ids: list[str], reason: str = "", source: str = "", arrived_at: float | None = None
) -> None:
    """`source`, `arrived_at`: the revocation's time-to-kill clock, for the log; its cut-offs
    carry it too, and whoever the gateway acknowledges them to observes it (drive)."""
    drive(key_ids=[uuid.UUID(k) for k in key_ids], reason=reason)


@task("cutoffs.reap", autoretry_for=())
def reap() -> int:
    """Alarm on the invalidations past their deadline, then re-drive those that are due.

    Alarms first: a cut-off that missed its deadline while no reaper ran (its worker was
    being restarted) is reported even when this run's call then succeeds (and clears it)."""
    settings = runtime().settings
    with runtime().sessions() as session:
        opened = cutoffs.raise_alarms(
            session,
            deadline=timedelta(seconds=settings.cutoff_deadline),
            actor=Actor.schedule("cutoffs.reap"),
        )
        session.commit()
    if opened:
        DEADLINE_ALARMS.inc(len(opened))
        log.error("cutoffs.deadline_missed", organisations=len(opened))
    return drive(key_ids=None, reason="re-driven")


def drive(*, key_ids: list[uuid.UUID] | None, reason: str) -> int:
    """Call the gateway for the due keys among these (all due keys when None) that no one else
    is calling for; the number acknowledged."""
    current = runtime()
    settings = current.settings
    if not settings.gateway_url:
        log.warning("gateway.not_configured", keys=len(key_ids or []), reason=reason)
        return 0
    # Longer than a call can take: a caller that died mid-call is replaced once it runs out.
    lease = timedelta(seconds=settings.gateway_timeout + 2)
    with current.sessions() as session:
        claimed = cutoffs.claim_due(session, lease=lease, key_ids=key_ids)
        session.commit()
    if not claimed:
        return 0
    called_at = utcnow()
    try:
        gateway.invalidate_keys(
            base_url=settings.gateway_url,
            secret=settings.gateway_secret,
            key_ids=[str(k) for k in claimed],
            timeout=settings.gateway_timeout,
            policy=settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        GATEWAY_CALLS.labels("failed").inc()
        log.warning("gateway.invalidation_failed", keys=len(claimed), error=str(exc))
        with current.sessions() as session:
            cutoffs.record_failure(
                session,
                key_ids=claimed,
                error=str(exc),
                retry_base=settings.cutoff_retry_base,
                retry_max=settings.cutoff_retry_max,
            )
            session.commit()
        return 0
    GATEWAY_CALLS.labels("acknowledged").inc()
    with current.sessions() as session:
        clocks = record_invalidation(session, key_ids=claimed, reason=reason, called_at=called_at)
        session.commit()
    acknowledged_at = utcnow()
    for clock in clocks:
        TIME_TO_KILL.labels(clock.source).observe(clock.seconds_until(acknowledged_at))
    log.info("gateway.invalidated", keys=len(claimed), reason=reason)
    return len(claimed)
