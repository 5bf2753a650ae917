"""Gateway cache invalidation, retried until the gateway acknowledges."""

from __future__ import annotations

import uuid

import structlog

from connectors import gateway
from models.actions.reviews import record_invalidation
from worker.runtime import runtime
from worker.tasks.base import TransientError, task

log = structlog.get_logger(__name__)


@task("gateway.invalidate_keys")
def invalidate_keys(key_ids: list[str], reason: str = "") -> None:
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
        )
    except gateway.GatewayUnavailable as exc:
        raise TransientError(str(exc)) from exc
    with runtime().sessions() as session:
        record_invalidation(session, key_ids=[uuid.UUID(k) for k in key_ids], reason=reason)
        session.commit()
    log.info("gateway.invalidated", keys=len(key_ids), reason=reason)
