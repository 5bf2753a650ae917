"""Disabling keys that the key-scope policy chose, and telling the gateway to forget them.

The one write behind a revocation, a revocation review and a team deletion: keys stamped with
the revocation that disabled them (so reactivation restores exactly those), an audit event per
key, and one gateway cache invalidation sent after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from models import audit, outbox
from models.actor import Actor
from models.base import utcnow
from models.entities import VirtualApiKey

TASK_INVALIDATE_KEYS = "gateway.invalidate_keys"


def revoke_keys(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    scope: ColumnElement[bool],
    actor: Actor,
    reason: str,
    revocation_id: uuid.UUID | None = None,
    audit_detail: dict[str, Any] | None = None,
    invalidation_detail: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Revoke the active keys in `scope`; the ids revoked, in a stable order."""
    now = utcnow()
    key_ids = sorted(
        session.scalars(
            update(VirtualApiKey)
            .where(scope, VirtualApiKey.revoked.is_(False))
            .values(
                revoked=True,
                revoked_at=now,
                revoked_by_revocation_id=revocation_id,
                updated_at=now,
            )
            .returning(VirtualApiKey.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    for key_id in key_ids:
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="api_key.revoked",
            target_type="api_key",
            target_id=key_id,
            before={"revoked": False},
            after={"revoked": True, **(audit_detail or {})},
        )
    if key_ids:
        invalidate(session, key_ids, reason=reason, **(invalidation_detail or {}))
        _expire_loaded(session, key_ids)
    return key_ids


def invalidate(
    session: Session, key_ids: Iterable[uuid.UUID | str], *, reason: str, **detail: Any
) -> None:
    """Have the gateway drop these keys from its cache once this transaction commits."""
    key_ids = [str(key_id) for key_id in key_ids]
    outbox.enqueue(session, TASK_INVALIDATE_KEYS, key_ids=key_ids, reason=reason, **detail)


def _expire_loaded(session: Session, key_ids: list[uuid.UUID]) -> None:
    """The UPDATE bypassed the identity map: reload any of these keys already loaded."""
    for key_id in key_ids:
        loaded = session.identity_map.get(identity_key(VirtualApiKey, key_id))
        if loaded is not None:
            session.expire(loaded)
