"""The bridge to Odock, outbound: store commands until acknowledged, then the gateway, then proof.

The commands and the proofs ride cut-offs (models/actions/cutoffs.py): a lease per key,
backoff, the reaper's re-drive and the deadline alarm are the same as for an embedded
invalidation. No task here retries through Celery."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from connectors import gateway, odock
from models.actions import cutoffs, key_proofs, store_commands
from models.base import utcnow
from models.settings import Settings
from worker.runtime import runtime
from worker.tasks.base import task
from worker.tasks.gateway import call_gateway
from worker.time_to_kill import observe

log = structlog.get_logger(__name__)


STORE_CLAIM_BATCH = 100


# No Celery retries: what is not acknowledged stays due on its cut-off, and the reaper sends it.
@task("odock.send_store_commands", autoretry_for=())
def send_store_commands(
    command_ids: list[str], source: str = "", arrived_at: float | None = None
) -> None:
    """The fast path after commit. `source` and `arrived_at`: the revocation's clock, kept on
    its cut-offs as well (which the time-to-kill observation reads, whoever completes them)."""
    with runtime().sessions() as session:
        key_ids = store_commands.keys_of(session, command_ids=[uuid.UUID(c) for c in command_ids])
    observe(drive_store(key_ids=key_ids))


# The task's name before migration 0033_store_commands renamed key commands to store commands:
# a message published under it by an older release (waiting in the broker, or still in the
# outbox) is carried out the same way.
@task("odock.send_key_commands", autoretry_for=())
def send_key_commands(
    command_ids: list[str], source: str = "", arrived_at: float | None = None
) -> None:
    """The former name of send_store_commands."""
    send_store_commands(command_ids, source=source, arrived_at=arrived_at)


@dataclass
class Sent:
    """What the store answered to one caller's commands."""

    acknowledged: dict[uuid.UUID, datetime] = field(default_factory=dict)
    unknown: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, tuple[uuid.UUID, str]] = field(
        default_factory=dict
    )  # key: (command, error)
    untried: list[uuid.UUID] = field(default_factory=list)  # keys not reached in the time
    retry_after: float | None = None  # the store asked to be left alone this long (429, 503)

    def settled_keys(self, claimed: list[uuid.UUID]) -> list[uuid.UUID]:
        return [k for k in claimed if k not in self.failed and k not in self.untried]


def drive_store(*, key_ids: list[uuid.UUID] | None) -> list[cutoffs.Clock]:
    """For the due store cut-offs among these keys (all when None) that no one else holds:
    send their commands until acknowledged, then call the gateway; the clocks completed."""
    settings = runtime().settings
    if not settings.odock_management_url:
        # The commands stay stored and unacknowledged (keys_with_pending_commands shows them).
        log.warning("odock.not_configured", keys=len(key_ids or []))
        return []
    claimed = _claim(settings, key_ids)
    if not claimed:
        return []
    with runtime().sessions() as session:
        outgoing = store_commands.unsettled_by_key(session, key_ids=claimed)
    sent = _send(settings, outgoing)
    _record_answers(settings, sent)
    return _after_the_store(settings, sent.settled_keys(claimed))


def _claim(settings: Settings, key_ids: list[uuid.UUID] | None) -> list[uuid.UUID]:
    # ODOCK_SEND_BUDGET, one more store call and the gateway call: never runs out under a
    # live caller.
    lease = settings.odock_send_budget + settings.odock_timeout + settings.gateway_timeout + 2
    with runtime().sessions() as session:
        claimed = cutoffs.claim_due(
            session,
            lease=timedelta(seconds=lease),
            key_ids=key_ids,
            via_store=True,
            batch=STORE_CLAIM_BATCH,
        )
        session.commit()
    return claimed


def _send(settings: Settings, outgoing: dict[uuid.UUID, list[store_commands.Outgoing]]) -> Sent:
    """Each key's commands in order, a key's later ones only once its earlier one is settled;
    a store that is down or hanging ends the round (the rest are given back untried)."""
    sent, started = Sent(), time.monotonic()
    keys = sorted(outgoing)
    for index, key_id in enumerate(keys):
        if time.monotonic() - started > settings.odock_send_budget:
            sent.untried = keys[index:]
            break
        for command in outgoing[key_id]:
            _count_attempt(command.id)
            try:
                sent.acknowledged[command.id] = _send_one(settings, command)
            except odock.KeyUnknown as exc:
                log.warning("odock.command_key_unknown", command_id=str(command.id), error=str(exc))
                sent.unknown.append(command.id)
            except odock.StoreUnavailable as exc:
                log.warning(
                    "odock.command_not_acknowledged", command_id=str(command.id), error=str(exc)
                )
                sent.failed[key_id] = (command.id, str(exc))
                sent.retry_after = exc.retry_after
                break
        if key_id in sent.failed:
            sent.untried = keys[index + 1 :]
            break
    return sent


def _count_attempt(command_id: uuid.UUID) -> None:
    with runtime().sessions() as session:
        store_commands.record_attempt(session, command_id=command_id)
        session.commit()


def _send_one(settings: Settings, command: store_commands.Outgoing) -> datetime:
    return odock.send_store_command(
        base_url=settings.odock_management_url,
        token=settings.odock_management_token,
        secret=settings.odock_command_secret,
        body=command.body,
        timeout=settings.odock_timeout,
        policy=settings.operator_outbound_policy(),
    )


def _record_answers(settings: Settings, sent: Sent) -> None:
    with runtime().sessions() as session:
        store_commands.record_acknowledgements(
            session,
            acknowledged=sent.acknowledged,
            reinvalidate_after=settings.odock_reinvalidate_after,
        )
        store_commands.record_unknown_keys(session, command_ids=sent.unknown)
        for command_id, error in sent.failed.values():
            store_commands.record_failed_attempt(session, command_id=command_id, error=error)
        for error in sorted({error for _command, error in sent.failed.values()}):
            failed = [k for k, (_c, e) in sent.failed.items() if e == error]
            cutoffs.record_failure(
                session,
                key_ids=failed,
                error=error,
                retry_base=settings.cutoff_retry_base,
                retry_max=settings.cutoff_retry_max,
                retry_after=sent.retry_after,
            )
        cutoffs.release(session, key_ids=sent.untried, due_at=_left_alone_until(settings, sent))
        session.commit()


def _left_alone_until(settings: Settings, sent: Sent) -> datetime | None:
    """When the store that ended the round asked to be called again (its Retry-After, at most
    CUTOFF_RETRY_MAX): the keys it left untried wait as long; None: due again at once."""
    if sent.retry_after is None:
        return None
    return utcnow() + timedelta(seconds=min(sent.retry_after, settings.cutoff_retry_max))


def _after_the_store(settings: Settings, settled: list[uuid.UUID]) -> list[cutoffs.Clock]:
    """The store settled these keys' commands: the gateway forgets those it caches."""
    if not settled:
        return []
    called_at = utcnow()
    with runtime().sessions() as session:
        to_invalidate = store_commands.keys_for_the_gateway(session, key_ids=settled)
        others = sorted(set(settled) - set(to_invalidate))
        store_commands.close_without_gateway(session, key_ids=others, called_at=called_at)
        session.commit()
    if not to_invalidate:
        return []
    if not settings.gateway_url:
        log.warning("gateway.not_configured", keys=len(to_invalidate))
        return []
    if not call_gateway(settings, to_invalidate):
        return []
    with runtime().sessions() as session:
        clocks = store_commands.record_gateway_invalidation(
            session, key_ids=to_invalidate, called_at=called_at
        )
        session.commit()
    prove(key_ids=to_invalidate)
    return clocks


def prove(*, key_ids: list[uuid.UUID] | None) -> int:
    """Ask the gateway whether it would still accept the revoked keys whose proof is due
    (all when None) and that no one else is asking about; the number of keys proven."""
    settings = runtime().settings
    if not settings.gateway_url:
        return 0
    lease = timedelta(seconds=settings.gateway_timeout + 2)
    with runtime().sessions() as session:
        claimed = cutoffs.claim_due(session, lease=lease, key_ids=key_ids, proof=True)
        session.commit()
    if not claimed:
        return 0
    asked_at = utcnow()
    try:
        statuses = gateway.key_status(
            base_url=settings.gateway_url,
            secret=settings.gateway_secret,
            key_ids=[str(k) for k in claimed],
            timeout=settings.gateway_timeout,
            policy=settings.operator_outbound_policy(),
        )
    except gateway.GatewayUnavailable as exc:
        log.warning("gateway.key_status_failed", keys=len(claimed), error=str(exc))
        statuses, error, retry_after = [], str(exc), exc.retry_after
    else:
        error, retry_after = "the gateway gave no status for the key", None
    answers = {uuid.UUID(s.key_id): (s.accepted, s.checked_at) for s in statuses}
    with runtime().sessions() as session:
        proven = key_proofs.record_proofs(
            session,
            key_ids=claimed,
            answers=answers,
            asked_at=asked_at,
            error=error,
            secret=settings.secret_key,
            retry_base=settings.cutoff_retry_base,
            retry_max=settings.cutoff_retry_max,
            retry_after=retry_after,
        )
        session.commit()
    return len(proven)


# Kept for messages queued before proofs were cut-offs; no Celery retries.
@task("odock.prove_keys_dead", autoretry_for=())
def prove_keys_dead(command_ids: list[str]) -> None:
    with runtime().sessions() as session:
        key_ids = key_proofs.open_missing_proofs(
            session, command_ids=[uuid.UUID(c) for c in command_ids]
        )
        session.commit()
    prove(key_ids=key_ids)
