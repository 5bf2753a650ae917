"""Audit log streams of an organisation: add, change, remove (each audited).

The destination URL passes the same outbound URL policy as notification hooks, when saved and
again before every send. Every stream signs its batches with Standard Webhooks (the secret is
shown once); a Splunk stream also sends its HEC token, stored encrypted.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.outbound import ResolvedNames, UrlPolicy
from connectors.signed_webhooks import new_signing_secret
from models import audit, locked_rows
from models.actor import Actor
from models.audit_sequence import highest_seq
from models.base import utcnow
from models.encryption import decrypt, encrypt
from models.entities import AuditStream
from models.enums import StreamPreset
from models.errors import InvalidInput, NotFound
from models.outbound_targets import sealed_secret, validate_name, validate_url

SIGNING_PURPOSE = "stream-signing"
MISSING = "audit stream not found"
TOKEN_PURPOSE = "stream-splunk-token"  # noqa: S105 (a purpose label)


def get_stream(session: Session, organisation_id: uuid.UUID, stream_id: uuid.UUID) -> AuditStream:
    stream = session.get(AuditStream, stream_id)
    if stream is None or stream.organisation_id != organisation_id:
        raise NotFound(MISSING)
    return stream


def list_streams(session: Session, organisation_id: uuid.UUID) -> list[AuditStream]:
    query = select(AuditStream).where(AuditStream.organisation_id == organisation_id)
    return list(session.scalars(query.order_by(AuditStream.created_at)))


def create_stream(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    name: str,
    preset: StreamPreset,
    target: str,
    splunk_token: str | None,
    batch_size: int,
    from_beginning: bool,
    url_policy: UrlPolicy | ResolvedNames,
    secret_key: str,
    actor: Actor,
) -> tuple[AuditStream, str]:
    """A new stream and its signing secret (shown once). It starts with the events
    sequenced from now on, or with the whole trail when `from_beginning`."""
    if preset is StreamPreset.SPLUNK and not (splunk_token or "").strip():
        raise InvalidInput("a Splunk stream needs its HEC token", field="splunk_token")
    secret = new_signing_secret()
    stream = AuditStream(
        organisation_id=organisation_id,
        name=validate_name(name),
        preset=preset,
        target=validate_url(target, url_policy),
        signing_secrets=[sealed_secret(secret_key, secret, purpose=SIGNING_PURPOSE)],
        splunk_token_sealed=(
            encrypt(secret_key, splunk_token.strip(), purpose=TOKEN_PURPOSE)
            if preset is StreamPreset.SPLUNK and splunk_token
            else None
        ),
        batch_size=_validate_batch(batch_size),
        cursor_seq=0 if from_beginning else highest_seq(session),
        consecutive_failures=0,
        events_sent=0,
        enabled=True,
    )
    session.add(stream)
    session.flush()
    _audit(session, stream, actor, "audit_stream.created", before=None)
    return stream, secret


def update_stream(
    session: Session,
    *,
    stream: AuditStream,
    actor: Actor,
    url_policy: UrlPolicy | ResolvedNames,
    name: str | None = None,
    target: str | None = None,
    batch_size: int | None = None,
    enabled: bool | None = None,
) -> AuditStream:
    """Locked and read again first: a change at once with another composes after it (its
    audit event's before is the other's after); after a delete it is not found (a 404)."""
    stream = locked_rows.locked_or_404(session, stream, MISSING)
    before = stream_snapshot(stream)
    if name is not None:
        stream.name = validate_name(name)
    if target is not None:
        stream.target = validate_url(target, url_policy)
    if batch_size is not None:
        stream.batch_size = _validate_batch(batch_size)
    if enabled is not None:
        stream.enabled = enabled
        if enabled:  # try again at once
            stream.next_attempt_at = None
    if stream_snapshot(stream) != before:
        stream.updated_at = utcnow()
        _audit(session, stream, actor, "audit_stream.updated", before=before)
    return stream


def delete_stream(session: Session, *, stream: AuditStream, actor: Actor) -> None:
    """Locked and read again first: of two deletes at once the later finds none (a 404)."""
    stream = locked_rows.locked_or_404(session, stream, MISSING)
    _audit(session, stream, actor, "audit_stream.deleted", before=stream_snapshot(stream))
    session.delete(stream)


def signing_secrets(stream: AuditStream, secret_key: str) -> list[str]:
    return [
        decrypt(secret_key, e["sealed"], purpose=SIGNING_PURPOSE) for e in stream.signing_secrets
    ]


def splunk_token(stream: AuditStream, secret_key: str) -> str:
    return decrypt(secret_key, stream.splunk_token_sealed or "", purpose=TOKEN_PURPOSE)


def stream_snapshot(stream: AuditStream) -> dict[str, Any]:
    return {
        "id": str(stream.id),
        "name": stream.name,
        "preset": stream.preset.value,
        "target": stream.target,
        "batch_size": stream.batch_size,
        "enabled": stream.enabled,
    }


def stream_view(stream: AuditStream) -> dict[str, Any]:
    def moment(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        **stream_snapshot(stream),
        "cursor_seq": stream.cursor_seq,
        "events_sent": stream.events_sent,
        "consecutive_failures": stream.consecutive_failures,
        "failing_since": moment(stream.first_failure_at),
        "last_error": stream.last_error,
        "last_success_at": moment(stream.last_success_at),
        "next_attempt_at": moment(stream.next_attempt_at),
        "signing_secret_ids": [e["id"] for e in stream.signing_secrets],
        "created_at": moment(stream.created_at),
    }


def _validate_batch(size: int) -> int:
    if not 1 <= size <= 5000:
        raise InvalidInput("batch_size must be 1 to 5000", field="batch_size")
    return size


def _audit(
    session: Session,
    stream: AuditStream,
    actor: Actor,
    action: str,
    *,
    before: dict[str, Any] | None,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=stream,
        action=action,
        target_type="audit_stream",
        before=before,
        after=None if action.endswith(".deleted") else stream_snapshot(stream),
    )
