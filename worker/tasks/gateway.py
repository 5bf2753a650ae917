"""Gateway cache invalidation with a deadline: called at once after commit, re-driven by the
reaper (worker/tasks/cutoffs.py) until the gateway acknowledges (models/actions/cutoffs)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from prometheus_client import Counter

from connectors import gateway
from models.actions import cutoffs
from models.actions.reviews import record_invalidation
from models.base import utcnow
from models.settings import Settings
from worker.runtime import runtime
from worker.tasks.base import task
from worker.time_to_kill import observe

log = structlog.get_logger(__name__)

GATEWAY_CALLS = Counter(
    "odock_gateway_invalidation_calls_total", "Gateway invalidation calls", ["outcome"]
)


# No Celery retries: a failed call leaves the cut-off due later, and the reaper calls again.
@task("gateway.invalidate_keys", autoretry_for=())
def invalidate_keys(
    key_ids: list[str], reason: str = "", source: str = "", arrived_at: float | None = None
) -> None:
    """`source` and `arrived_at`: the revocation's clock, kept on its cut-offs as well (which
    the time-to-kill observation reads, whoever completes them)."""
    observe(drive(key_ids=[uuid.UUID(k) for k in key_ids], reason=reason))


def drive(*, key_ids: list[uuid.UUID] | None, reason: str) -> list[cutoffs.Clock]:
    """Call the gateway for the due keys among these (all due keys when None) that no one else
    is calling for; the clocks of the revocations this completed."""
    current = runtime()
    settings = current.settings
    if not settings.gateway_url:
        log.warning("gateway.not_configured", keys=len(key_ids or []), reason=reason)
        return []
    # Longer than a call can take: a caller that died mid-call is replaced once it runs out.
    lease = timedelta(seconds=settings.gateway_timeout + 2)
    with current.sessions() as session:
        claimed = cutoffs.claim_due(session, lease=lease, key_ids=key_ids)
        session.commit()
    if not claimed:
        return []
    called_at = utcnow()
    if not call_gateway(settings, claimed):
        return []
    with current.sessions() as session:
        clocks = record_invalidation(session, key_ids=claimed, reason=reason, called_at=called_at)
        session.commit()
    log.info("gateway.invalidated", keys=len(claimed), reason=reason)
    return clocks


def call_gateway(settings: Settings, key_ids: list[uuid.UUID]) -> bool:
    """Ask the gateway to forget these keys (the caller holds their cut-offs); a failure
    leaves the cut-offs due later, with backoff, and no sooner than the gateway's Retry-After
    (a 429 or 503 that says how long; at most CUTOFF_RETRY_MAX). True when the gateway
    acknowledged."""
    try:
        gateway.invalidate_keys(
            base_url=settings.gateway_url,
            secret=settings.gateway_secret,
            key_ids=[str(k) for k in key_ids],
            timeout=settings.gateway_timeout,
            policy=settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        GATEWAY_CALLS.labels("failed").inc()
        log.warning(
            "gateway.invalidation_failed",
            keys=len(key_ids),
            error=str(exc),
            retry_after=exc.retry_after,
        )
        with runtime().sessions() as session:
            cutoffs.record_failure(
                session,
                key_ids=key_ids,
                error=str(exc),
                retry_base=settings.cutoff_retry_base,
                retry_max=settings.cutoff_retry_max,
                retry_after=exc.retry_after,
            )
            session.commit()
        return False
    GATEWAY_CALLS.labels("acknowledged").inc()
    return True
