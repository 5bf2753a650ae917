"""Disabling and restoring the keys that the key-scope policy chose.

The one write behind a revocation, a revocation review and a team deletion: keys stamped with
the revocation that disabled them (so reactivation restores exactly those), an audit event per
key, and the change carried to the store and the gateway by models/key_changes.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from models import key_scope, person_lock
from models.actor import Actor
from models.entities import User, VirtualApiKey
from models.enums import KeyType, StoreCommandType
from models.errors import InvalidTransition
from models.key_changes import KeyChange, carry_out_key_change


def lock_keys(session: Session, scope: ColumnElement[bool]) -> None:
    """Lock the keys in `scope` in id order (PostgreSQL), before a change that touches them:
    every caller taking them in the same order, two never wait on each other's keys."""
    if session.get_bind().dialect.name == "postgresql":
        query = select(VirtualApiKey.id).where(scope).order_by(VirtualApiKey.id)
        session.execute(query.with_for_update()).all()


def revoke_keys(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    scope: ColumnElement[bool],
    actor: Actor,
    reason: str,
    scope_params: Mapping[str, Any] | None = None,
    revocation_id: uuid.UUID | None = None,
    audit_detail: dict[str, Any] | None = None,
    invalidation_detail: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Revoke the active keys in `scope` (a kept scope with its `scope_params`, see
    KeyChange); the ids revoked, in a stable order."""
    change = KeyChange(
        command=StoreCommandType.REVOKE,
        organisation_id=organisation_id,
        scope=scope,
        actor=actor,
        reason=reason,
        scope_params=scope_params,
        revocation_id=revocation_id,
        audit_detail=audit_detail or {},
        invalidation_detail=invalidation_detail or {},
    )
    return sorted(carry_out_key_change(session, change))


def restore_keys(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    revocation_id: uuid.UUID,
    actor: Actor,
    reason: str,
    audit_detail: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Re-enable exactly the keys this revocation disabled; the ids restored."""
    change = KeyChange(
        command=StoreCommandType.RESTORE,
        organisation_id=organisation_id,
        scope=VirtualApiKey.revoked_by_revocation_id == revocation_id,
        actor=actor,
        reason=reason,
        revocation_id=revocation_id,
        audit_detail=audit_detail or {},
    )
    return sorted(carry_out_key_change(session, change))


def restore_key(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    key_id: uuid.UUID,
    actor: Actor,
    reason: str,
    audit_detail: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Re-enable one revoked key of this organisation (an admin's decision); [] when it was
    not revoked. Refused (InvalidTransition) while the key's holder is revoked and their
    revocation would disable it (key_scope.kept_off_for_a_leaver): decided on the holder as
    they are now, under their lock, so a revocation at the same moment comes before or after.
    A caller that locks the key first locks its holder before (`lock_holder`)."""
    _refuse_for_a_leaver(session, organisation_id, key_id)
    change = KeyChange(
        command=StoreCommandType.RESTORE,
        organisation_id=organisation_id,
        scope=(VirtualApiKey.id == key_id) & (VirtualApiKey.organisation_id == organisation_id),
        actor=actor,
        reason=reason,
        audit_detail=audit_detail or {},
    )
    return sorted(carry_out_key_change(session, change))


def lock_holder(session: Session, organisation_id: uuid.UUID, key_id: uuid.UUID) -> User | None:
    """Lock the person a key counts against (key_scope.holder) and read them as they are now,
    before any lock on the key: a revocation locks the person, then their keys."""
    this_key = (VirtualApiKey.id == key_id) & (VirtualApiKey.organisation_id == organisation_id)
    holder_id = session.scalar(select(key_scope.holder()).where(this_key))
    holder = session.get(User, holder_id) if holder_id is not None else None
    if holder is not None:
        person_lock.read_locked(session, holder)
    return holder


def _refuse_for_a_leaver(session: Session, organisation_id: uuid.UUID, key_id: uuid.UUID) -> None:
    holder = lock_holder(session, organisation_id, key_id)  # a no-op if the caller locked them
    if holder is None:
        return
    this_key = (VirtualApiKey.id == key_id) & (VirtualApiKey.organisation_id == organisation_id)
    if session.scalar(select(VirtualApiKey.id).where(this_key, key_scope.kept_off_for_a_leaver())):
        raise InvalidTransition(
            f"the key's holder {holder.email} is revoked: the key comes back with them, when "
            "they are reactivated, not before",
            current_status=holder.status.value,
        )


def reassign_key(
    session: Session,
    *,
    key: VirtualApiKey,
    owner_user_id: uuid.UUID | None,
    owner_team_id: uuid.UUID | None,
    actor: Actor,
    reason: str,
    audit_detail: dict[str, Any] | None = None,
    revocation_id: uuid.UUID | None = None,
) -> None:
    """Give the key a new owner: a USER key when it names a person, else a TEAM key; decided
    in the review of `revocation_id`, when it was."""
    before = {
        "key_type": key.key_type.value,
        "owner_user_id": str(key.owner_user_id) if key.owner_user_id else None,
        "owner_team_id": str(key.owner_team_id) if key.owner_team_id else None,
    }
    change = KeyChange(
        command=StoreCommandType.REASSIGN,
        organisation_id=key.organisation_id,
        scope=VirtualApiKey.id == key.id,
        actor=actor,
        reason=reason,
        owner_user_id=owner_user_id,
        owner_team_id=owner_team_id,
        key_type=KeyType.USER if owner_user_id else KeyType.TEAM,
        revocation_id=revocation_id,
        audit_detail=audit_detail or {},
        audit_before=before,
    )
    carry_out_key_change(session, change)
