"""The bridge to Odock, outbound: key commands until acknowledged, then the gateway, then proof."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import structlog

from connectors import gateway, odock
from models.actions import key_commands, key_proofs
from models.base import utcnow
from models.settings import Settings
from worker.runtime import runtime
from worker.tasks.base import TransientError, task
from worker.tasks.gateway import TIME_TO_KILL

log = structlog.get_logger(__name__)


@task("odock.send_key_commands", bind=True, autoretry_for=())
def send_key_commands(
    self: Any, command_ids: list[str], source: str = "", arrived_at: float | None = None
) -> None:
    """`source` and `arrived_at`: the revocation's time-to-kill clock (see gateway.py)."""
    current, ids = runtime(), [uuid.UUID(c) for c in command_ids]
    clock = {"source": source, "arrived_at": arrived_at} if arrived_at is not None else None
    if not current.settings.odock_management_url:
        # The commands stay stored and unacknowledged (keys_with_pending_commands shows them).
        log.warning("odock.not_configured", commands=len(ids))
        return
    with current.sessions() as session:
        pending = key_commands.pending_commands(session, command_ids=ids)
    acknowledged, unknown = _send(current.settings, pending.ready)
    with current.sessions() as session:
        key_commands.record_acknowledgements(
            session,
            acknowledged=acknowledged,
            reinvalidate_after=current.settings.odock_reinvalidate_after,
            clock=clock,
        )
        key_commands.record_unknown_keys(session, command_ids=unknown)
        session.commit()
    if pending.waiting or len(acknowledged) + len(unknown) < len(pending.ready):
        countdown = _backoff(current.settings, self.request.retries)
        raise self.retry(countdown=countdown, max_retries=None)


def _send(
    settings: Settings, ready: list[key_commands.Outgoing]
) -> tuple[dict[uuid.UUID, datetime], list[uuid.UUID]]:
    """The commands acknowledged (id -> applied at), and those whose key the store lacks."""
    acknowledged, unknown = {}, []
    for command in ready:
        try:
            acknowledged[command.id] = odock.send_key_command(
                base_url=settings.odock_management_url,
                token=settings.odock_management_token,
                secret=settings.odock_command_secret,
                body=command.body,
                timeout=settings.odock_timeout,
                policy=settings.operator_outbound_policy(),
            )
        except odock.KeyUnknown as exc:
            log.warning("odock.command_key_unknown", command_id=str(command.id), error=str(exc))
            unknown.append(command.id)
        except odock.StoreUnavailable as exc:
            log.warning(
                "odock.command_not_acknowledged", command_id=str(command.id), error=str(exc)
            )
            with runtime().sessions() as session:
                key_commands.record_failed_attempt(session, command_id=command.id, error=str(exc))
                session.commit()
    return acknowledged, unknown


def _backoff(settings: Settings, retries: int) -> float:
    return float(
        min(settings.odock_command_retry_base * 2**retries, settings.odock_command_retry_max)
    )


@task("odock.invalidate_acknowledged", bind=True)
def invalidate_acknowledged(
    self: Any,
    command_ids: list[str],
    not_before: str = "",
    source: str = "",
    arrived_at: float | None = None,
) -> None:
    if not_before and (wait := (datetime.fromisoformat(not_before) - utcnow()).total_seconds()) > 0:
        raise self.retry(countdown=wait, max_retries=None)
    current, ids = runtime(), [uuid.UUID(c) for c in command_ids]
    with current.sessions() as session:
        key_ids = key_commands.acknowledged_keys(session, command_ids=ids)
    if not key_ids or not current.settings.gateway_url:
        return
    try:
        gateway.invalidate_keys(
            base_url=current.settings.gateway_url,
            secret=current.settings.gateway_secret,
            key_ids=[str(k) for k in key_ids],
            timeout=current.settings.gateway_timeout,
            policy=current.settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        raise TransientError(str(exc)) from exc
    if arrived_at is not None:
        TIME_TO_KILL.labels(source or "unknown").observe(max(0.0, time.time() - arrived_at))
    with current.sessions() as session:
        key_commands.record_gateway_invalidation(session, command_ids=ids)
        session.commit()


@task("odock.prove_keys_dead")
def prove_keys_dead(command_ids: list[str]) -> None:
    current, ids = runtime(), [uuid.UUID(c) for c in command_ids]
    with current.sessions() as session:
        key_ids = key_commands.acknowledged_keys(session, command_ids=ids)
    try:
        statuses = gateway.key_status(
            base_url=current.settings.gateway_url,
            secret=current.settings.gateway_secret,
            key_ids=[str(k) for k in key_ids],
            timeout=current.settings.gateway_timeout,
            policy=current.settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        raise TransientError(str(exc)) from exc
    answers = {uuid.UUID(s.key_id): (s.accepted, s.checked_at) for s in statuses}
    with current.sessions() as session:
        key_proofs.record_key_status(
            session, command_ids=ids, answers=answers, secret=current.settings.secret_key
        )
        session.commit()
