"""Audit streams: the beat job numbers new events and wakes each due stream; one task per
stream sends its batches in order until it is caught up, fails, or has sent its share."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NamedTuple

import structlog

from connectors import siem
from connectors.outbound import UnsafeUrl, check_url, post_json
from connectors.signed_webhooks import sign_all
from models.actions.audit_streams import signing_secrets, splunk_token
from models.audit_sequence import sequence_events
from models.audit_stream_delivery import (
    Batch,
    batch_accepted,
    batch_refused,
    claim_stream,
    due_stream_ids,
    next_batch,
    release_stream,
    settle_stream,
)
from models.base import utcnow
from models.entities import AuditStream
from models.enums import StreamPreset
from models.settings import Settings
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)

SEQUENCE_PASSES = 25  # up to 50,000 events numbered per tick


@task("audit.stream_tick")
def stream_tick() -> int:
    rt = runtime()
    for _ in range(SEQUENCE_PASSES):
        with rt.sessions() as session:
            numbered = sequence_events(session)
            session.commit()
        if not numbered:
            break
    with rt.sessions() as session:
        due = due_stream_ids(session, now=utcnow())
        session.rollback()
    for stream_id in due:
        deliver_stream.delay(str(stream_id))
    return len(due)


@task("audit.deliver_stream")
def deliver_stream(stream_id: str) -> int:
    rt, settings, sent = runtime(), runtime().settings, 0
    lease = timedelta(seconds=settings.notification_timeout * 2 + 30)
    for _ in range(settings.audit_stream_batches_per_run):
        with rt.sessions() as session:
            stream = claim_stream(
                session, stream_id=uuid.UUID(stream_id), lease=lease, now=utcnow()
            )
            if stream is None:
                session.commit()
                return sent
            batch = next_batch(session, stream=stream)
            request = _request(settings, stream, batch) if batch else None
            session.commit()
        if batch is None or request is None:
            break
        refusal = _send(settings, *request)
        with rt.sessions() as session:
            stream = settle_stream(session, stream_id=uuid.UUID(stream_id))
            if stream is None:  # deleted while the batch was out: nothing left to write to
                ok = refusal is None
                log.info("audit_stream.deleted_while_sending", stream_id=stream_id, ok=ok)
                return sent
            if refusal is None:
                batch_accepted(session, stream=stream, batch=batch, now=utcnow())
                sent += len(batch.events)
            else:
                batch_refused(
                    session,
                    stream=stream,
                    error=refusal.error,
                    now=utcnow(),
                    retry_base=settings.audit_stream_retry_base,
                    retry_max=settings.audit_stream_retry_max,
                    retry_after=refusal.retry_after,
                )
                log.warning("audit_stream.refused", stream_id=stream_id, error=refusal.error)
            stream.claimed_until = None
            session.commit()
        if refusal is not None:
            return sent
    with rt.sessions() as session:
        release_stream(session, stream_id=uuid.UUID(stream_id))
        session.commit()
    return sent


def _request(
    settings: Settings, stream: AuditStream, batch: Batch
) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers of one batch: NDJSON or Splunk HEC, signed either way."""
    if stream.preset is StreamPreset.SPLUNK:
        body = siem.splunk_body(batch.events)
        headers = siem.splunk_headers(splunk_token(stream, settings.secret_key))
    else:
        body = siem.ndjson_body(batch.events)
        headers = {"Content-Type": "application/x-ndjson"}
    secrets = signing_secrets(stream, settings.secret_key)
    headers |= sign_all(secrets, msg_id=batch.message_id, body=body)
    return stream.target, body, headers


class Refusal(NamedTuple):
    """Why the receiver did not take the batch, and how long it asked to be left alone."""

    error: str
    retry_after: float | None = None


def _send(settings: Settings, url: str, body: bytes, headers: dict[str, str]) -> Refusal | None:
    """None when the receiver accepted the batch, else why not."""
    policy = settings.outbound_policy()
    try:
        check_url(url, policy)
    except UnsafeUrl as exc:
        return Refusal(f"refused: {exc.reason}")
    result = post_json(url, body, headers, timeout=settings.notification_timeout, policy=policy)
    return None if result.ok else Refusal(result.error or "failed", result.retry_after)
