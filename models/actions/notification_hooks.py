"""Notification hooks of an organisation: add, change, remove, rotate secrets, re-enable.

Webhook and Slack hooks hold a URL that must pass the outbound URL policy; webhook hooks hold
signing secrets, encrypted with the service's secret key, several at once during a rotation.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.outbound import ResolvedNames, UrlPolicy
from connectors.signed_webhooks import new_signing_secret
from models import audit, locked_rows
from models.actions.users import validate_email
from models.actor import Actor
from models.base import utcnow
from models.encryption import decrypt
from models.entities import NotificationHook
from models.enums import HookKind
from models.errors import InvalidInput, NotFound
from models.outbound_targets import sealed_secret, validate_name, validate_url

KNOWN_EVENTS = (
    "review.opened",
    "review.resolved",
    "review.escalated",
    "finding.urgent",
    "hook.disabled",
    "mass_change.held",
    "source.silent",
    "source.recovered",
    "access.departure_notice",
    "organisation.no_active_admin",
)
MAX_ACTIVE_SECRETS = 5
SIGNING_PURPOSE = "hook-signing"
MISSING = "notification hook not found"
EVENT_PATTERN = re.compile(r"^[a-z0-9_]{1,30}(\.[a-z0-9_]{1,30}){0,3}(\.\*)?$")


def get_hook(session: Session, organisation_id: uuid.UUID, hook_id: uuid.UUID) -> NotificationHook:
    hook = session.get(NotificationHook, hook_id)
    if hook is None or hook.organisation_id != organisation_id:
        raise NotFound(MISSING)
    return hook


def list_hooks(session: Session, organisation_id: uuid.UUID) -> list[NotificationHook]:
    query = select(NotificationHook).where(NotificationHook.organisation_id == organisation_id)
    return list(session.scalars(query.order_by(NotificationHook.created_at)))


def create_hook(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    name: str,
    kind: HookKind,
    target: str,
    events: list[str] | None,
    url_policy: UrlPolicy | ResolvedNames,
    secret_key: str,
    actor: Actor,
) -> tuple[NotificationHook, str | None]:
    """A new hook, and for a webhook its first signing secret (shown once)."""
    hook = NotificationHook(
        organisation_id=organisation_id,
        name=validate_name(name),
        kind=kind,
        target=_validate_target(kind, target, url_policy),
        events=_validate_events(events or []),
        signing_secrets=[],
    )
    secret = None
    if kind is HookKind.WEBHOOK:
        secret = new_signing_secret()
        hook.signing_secrets = [sealed_secret(secret_key, secret, purpose=SIGNING_PURPOSE)]
    session.add(hook)
    session.flush()
    _audit(session, hook, actor, "hook.created", before=None)
    return hook, secret


def update_hook(
    session: Session,
    *,
    hook: NotificationHook,
    actor: Actor,
    url_policy: UrlPolicy | ResolvedNames,
    name: str | None = None,
    target: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> NotificationHook:
    """Locked and read again first: a change at once with another composes after it (its
    audit event's before is the other's after); after a delete it is not found (a 404)."""
    hook = locked_rows.locked_or_404(session, hook, MISSING)
    before = hook_snapshot(hook)
    if name is not None:
        hook.name = validate_name(name)
    if target is not None:
        hook.target = _validate_target(hook.kind, target, url_policy)
    if events is not None:
        hook.events = _validate_events(events)
    if enabled is True and not hook.enabled:
        hook.enabled, hook.disabled_at, hook.disabled_reason = True, None, None
        hook.consecutive_failures, hook.first_failure_at = 0, None
    elif enabled is False and hook.enabled:
        hook.enabled, hook.disabled_at, hook.disabled_reason = False, utcnow(), f"by {actor}"
    if hook_snapshot(hook) != before:
        hook.updated_at = utcnow()
        _audit(session, hook, actor, "hook.updated", before=before)
    return hook


def delete_hook(session: Session, *, hook: NotificationHook, actor: Actor) -> None:
    """Locked and read again first: of two deletes at once the later finds none (a 404)."""
    hook = locked_rows.locked_or_404(session, hook, MISSING)
    _audit(session, hook, actor, "hook.deleted", before=hook_snapshot(hook), deleted=True)
    session.delete(hook)


def rotate_secret(
    session: Session,
    *,
    hook: NotificationHook,
    secret_key: str,
    actor: Actor,
    keep_previous_hours: float = 24,
) -> str:
    """Add a new signing secret; the previous ones keep signing for a grace period. Locked
    and read again first: two rotations at once keep both new secrets."""
    hook = locked_rows.locked_or_404(session, hook, MISSING)
    if hook.kind is not HookKind.WEBHOOK:
        raise InvalidInput("only webhook hooks have signing secrets")
    if not 0 <= keep_previous_hours <= 24 * 30:
        raise InvalidInput("keep_previous_hours must be 0 to 720", field="keep_previous_hours")
    now = utcnow()
    until = (now + timedelta(hours=keep_previous_hours)).isoformat()
    entries = []
    for entry in active_secret_entries(hook, now):
        expires = entry.get("expires_at")
        if expires is None or expires > until:
            entry = {**entry, "expires_at": until}
        entries.append(entry)
    secret = new_signing_secret()
    entries.append(sealed_secret(secret_key, secret, purpose=SIGNING_PURPOSE))
    hook.signing_secrets = entries[-MAX_ACTIVE_SECRETS:]
    hook.updated_at = now
    audit.record_change(
        session,
        actor=actor,
        subject=hook,
        action="hook.secret_rotated",
        target_type="notification_hook",
        after={
            "secret_ids": [e["id"] for e in hook.signing_secrets],
            "previous_expire_at": until,
        },
    )
    return secret


def active_secret_entries(
    hook: NotificationHook, now: datetime | None = None
) -> list[dict[str, Any]]:
    moment = (now or utcnow()).isoformat()
    return [
        e for e in hook.signing_secrets if e.get("expires_at") is None or e["expires_at"] > moment
    ]


def signing_secrets(hook: NotificationHook, secret_key: str) -> list[str]:
    """The plaintext secrets to sign with now (every active one)."""
    return [
        decrypt(secret_key, e["sealed"], purpose=SIGNING_PURPOSE)
        for e in active_secret_entries(hook)
    ]


def hook_snapshot(hook: NotificationHook) -> dict[str, Any]:
    return {
        "id": str(hook.id),
        "name": hook.name,
        "kind": hook.kind.value,
        "target": redact_target(hook),
        "events": list(hook.events),
        "enabled": hook.enabled,
    }


def hook_view(hook: NotificationHook) -> dict[str, Any]:
    return {
        **hook_snapshot(hook),
        "disabled_at": hook.disabled_at.isoformat() if hook.disabled_at else None,
        "disabled_reason": hook.disabled_reason,
        "consecutive_failures": hook.consecutive_failures,
        "last_success_at": hook.last_success_at.isoformat() if hook.last_success_at else None,
        "signing_secrets": [
            {"id": e["id"], "created_at": e["created_at"], "expires_at": e.get("expires_at")}
            for e in active_secret_entries(hook)
        ],
        "created_at": hook.created_at.isoformat(),
    }


def redact_target(hook: NotificationHook) -> str:
    """Slack URLs carry their secret in the path; show only the host."""
    if hook.kind is HookKind.SLACK:
        scheme, _, rest = hook.target.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/…"
    return hook.target


def subscribed(hook: NotificationHook, event: str) -> bool:
    if not hook.events:
        return True
    return any(
        pattern == event or (pattern.endswith(".*") and event.startswith(pattern[:-1]))
        for pattern in hook.events
    )


def _validate_target(kind: HookKind, target: str, policy: UrlPolicy | ResolvedNames) -> str:
    if kind is HookKind.EMAIL:
        return validate_email(target.strip())
    return validate_url(target, policy)


def _validate_events(events: list[str]) -> list[str]:
    """Event names (`review.opened`) or a prefix wildcard (`review.*`); empty means all."""
    cleaned = {event.strip() for event in events}
    for event in cleaned:
        if not EVENT_PATTERN.match(event):
            raise InvalidInput(f"{event!r} is not an event name or prefix.*", field="events")
    return sorted(cleaned)


def _audit(
    session: Session,
    hook: NotificationHook,
    actor: Actor,
    action: str,
    *,
    before: dict[str, Any] | None,
    deleted: bool = False,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=hook,
        action=action,
        target_type="notification_hook",
        before=before,
        after=None if deleted else hook_snapshot(hook),
    )
