"""The user lifecycle: create, edit, approve, decline, revoke, reactivate.

Every operation takes a session, writes an audit event, and never commits.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import ColumnElement, exists, inspect, select
from sqlalchemy.orm import Session

from models import audit, outbox
from models.actor import Actor
from models.base import new_id, utcnow
from models.entities import (
    IdentityLink,
    Organisation,
    OrganisationSettings,
    Revocation,
    User,
    VirtualApiKey,
)
from models.entities.user import email_key
from models.enums import KeyCommandType, KeyPolicy, KeyType, Role, Source, UserStatus
from models.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from models.key_changes import KeyChange, carry_out_key_change
from models.snapshots import user_snapshot
from models.text import clean_text, has_control_characters

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

TASK_OPEN_REVIEW = "reviews.open_for_revocation"


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 320 or not EMAIL_PATTERN.match(email) or has_control_characters(email):
        raise InvalidInput(f"{email!r} is not a valid email address", field="email")
    return email


def validate_name(name: str) -> str:
    return clean_text(name, field="name", max_length=200)


def find_user_by_email(session: Session, organisation_id: uuid.UUID, email: str) -> User | None:
    return session.scalar(
        select(User).where(
            User.organisation_id == organisation_id, User.email_key == email_key(email)
        )
    )


def get_user(session: Session, organisation_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """A user of this organisation; another organisation's user is simply not found."""
    user = session.get(User, user_id)
    if user is None or user.organisation_id != organisation_id:
        raise NotFound("user not found")
    return user


def create_user(
    session: Session,
    *,
    organisation: Organisation,
    email: str,
    name: str,
    role: Role,
    actor: Actor,
    status: UserStatus | None = None,
) -> User:
    """A new user; ACTIVE unless the organisation requires approval (then PENDING)."""
    email = validate_email(email)
    _check_organisation_role(role)
    if find_user_by_email(session, organisation.id, email):
        raise Conflict(f"a user with email {email} already exists", field="email")
    user = add_user(
        session,
        organisation=organisation,
        email=email,
        name=name,
        role=role,
        actor=actor,
        status=status,
    )
    session.flush()
    return user


def add_user(
    session: Session,
    *,
    organisation: Organisation,
    email: str,
    name: str,
    role: Role,
    actor: Actor,
    status: UserStatus | None = None,
) -> User:
    """create_user for a caller that has just looked the email up and found no one: no
    second lookup and no flush of its own (the unique email key still refuses a race)."""
    email = validate_email(email)
    _check_organisation_role(role)
    if status is None:
        pending = organisation.settings.approval_required
        status = UserStatus.PENDING if pending else UserStatus.ACTIVE
    user = User(
        id=new_id(),
        organisation_id=organisation.id,
        name=validate_name(name),
        role=role,
        status=status,
    )
    user.set_email(email)
    session.add(user)
    _audit(session, user, actor, "user.created", before=None)
    return user


def _check_organisation_role(role: Role) -> None:
    if role is Role.SUPER_ADMIN:
        raise InvalidInput("SUPER_ADMIN is a platform role, not an organisation role", field="role")


def edit_user(
    session: Session,
    *,
    user: User,
    actor: Actor,
    name: str | None = None,
    email: str | None = None,
    role: Role | None = None,
    status: UserStatus | None = None,
) -> User:
    """Change profile fields; a status change goes through its own lifecycle operation."""
    before = user_snapshot(user)
    if name is not None:
        user.name = validate_name(name)
    if email is not None and email.strip() != user.email:
        email = validate_email(email)
        clash = find_user_by_email(session, user.organisation_id, email)
        if clash is not None and clash.id != user.id:
            raise Conflict(f"a user with email {email} already exists", field="email")
        user.set_email(email)
    if role is not None:
        if role is Role.SUPER_ADMIN:
            raise InvalidInput("SUPER_ADMIN cannot be granted here", field="role")
        user.role = role
    if user_snapshot(user) != before:
        user.updated_at = utcnow()
        _audit(session, user, actor, "user.updated", before=before)
    if status is not None and status is not user.status:
        change_status(session, user=user, status=status, actor=actor)
    return user


def change_status(session: Session, *, user: User, status: UserStatus, actor: Actor) -> None:
    """Route a requested status to the operation that owns that transition."""
    if status is UserStatus.ACTIVE:
        if user.status is UserStatus.PENDING:
            approve_user(session, user=user, actor=actor)
        else:
            reactivate_user(session, user=user, actor=actor)
    elif status is UserStatus.REVOKED:
        if user.status is UserStatus.PENDING:
            decline_user(session, user=user, actor=actor)
        else:
            revoke_user(session, user=user, actor=actor)
    else:
        raise InvalidTransition(f"a {user.status} user cannot go back to PENDING")


def approve_user(session: Session, *, user: User, actor: Actor) -> User:
    _require_status(user, UserStatus.PENDING, "approve")
    before = user_snapshot(user)
    user.status = UserStatus.ACTIVE
    user.updated_at = utcnow()
    _audit(session, user, actor, "user.approved", before=before, extra=_enrolled_by(session, user))
    return user


def decline_user(session: Session, *, user: User, actor: Actor, reason: str = "") -> Revocation:
    _require_status(user, UserStatus.PENDING, "decline")
    return _revoke(
        session,
        user=user,
        actor=actor,
        reason=reason or "declined",
        action="user.declined",
        extra=_enrolled_by(session, user),
    )


def revoke_user(session: Session, *, user: User, actor: Actor, reason: str = "") -> Revocation:
    """Cut an ACTIVE user off: status REVOKED, owned keys per policy, review and cache flush."""
    _require_status(user, UserStatus.ACTIVE, "revoke")
    return _revoke(session, user=user, actor=actor, reason=reason, action="user.revoked")


def reactivate_user(session: Session, *, user: User, actor: Actor) -> User:
    """Undo the latest revocation: status back, and only the keys that revocation disabled."""
    _require_status(user, UserStatus.REVOKED, "reactivate")
    revocation = latest_revocation(session, user.id)
    before = user_snapshot(user)
    user.status = UserStatus.ACTIVE
    user.updated_at = utcnow()
    restored: list[str] = []
    if revocation is not None:
        revocation.undone_at = utcnow()
        restored = _restore_keys(session, user, revocation, actor)
    _audit(
        session, user, actor, "user.reactivated", before=before, extra={"keys_restored": restored}
    )
    return user


def set_active(
    session: Session, *, user: User, active: bool, actor: Actor, reason: str = ""
) -> bool:
    """Bring a user to the state an identity source asserts; False when already there."""
    if active and user.status is UserStatus.REVOKED:
        reactivate_user(session, user=user, actor=actor)
        return True
    if not active and user.status is UserStatus.ACTIVE:
        revoke_user(session, user=user, actor=actor, reason=reason)
        return True
    if not active and user.status is UserStatus.PENDING:
        decline_user(session, user=user, actor=actor, reason=reason)
        return True
    return False


def latest_revocation(session: Session, user_id: uuid.UUID) -> Revocation | None:
    return session.scalar(
        select(Revocation)
        .where(Revocation.user_id == user_id, Revocation.undone_at.is_(None))
        .order_by(Revocation.revoked_at.desc())
        .limit(1)
    )


def _enrolled_by(session: Session, user: User) -> dict[str, object]:
    """The invitation a pending user came through, so approvals link to it in the audit."""
    invitation_id = session.scalar(
        select(IdentityLink.external_id).where(
            IdentityLink.user_id == user.id, IdentityLink.source == Source.INVITATION
        )
    )
    return {"invitation_id": invitation_id} if invitation_id else {}


def _revoke(
    session: Session,
    *,
    user: User,
    actor: Actor,
    reason: str,
    action: str,
    extra: dict[str, object] | None = None,
) -> Revocation:
    reason = clean_text(reason, field="reason", max_length=500, required=False)
    before = user_snapshot(user)
    if inspect(user).pending:
        # Written first: no relationship tells the flush that a revocation refers to it.
        session.flush()
    revocation = Revocation(
        organisation_id=user.organisation_id,
        user_id=user.id,
        source=actor.source,
        actor=str(actor),
        reason=reason,
        previous_status=user.status,
    )
    session.add(revocation)
    session.flush()
    user.status = UserStatus.REVOKED
    user.updated_at = utcnow()
    revoked = _revoke_owned_keys(session, user, revocation, actor)
    _audit(
        session,
        user,
        actor,
        action,
        before=before,
        extra={"keys_revoked": revoked, "reason": reason, **(extra or {})},
    )
    # Eager: published right after commit with no second transaction. Should the process die
    # in between, the relay re-sends it after OUTBOX_REDISPATCH_AFTER; the key invalidation
    # (key_changes) is not eager, as a revoked key must leave the gateway's cache within seconds.
    outbox.enqueue(session, TASK_OPEN_REVIEW, eager=True, revocation_id=str(revocation.id))
    return revocation


def _revoke_owned_keys(
    session: Session, user: User, revocation: Revocation, actor: Actor
) -> list[str]:
    """Disable the user's own active keys when the organisation's policy says so."""
    # The policy is checked inside the UPDATE: one round trip whatever the policy.
    policy_revokes = exists().where(
        OrganisationSettings.organisation_id == user.organisation_id,
        OrganisationSettings.user_key_policy == KeyPolicy.REVOKE,
    )
    scope = (
        (VirtualApiKey.owner_user_id == user.id)
        & (VirtualApiKey.key_type == KeyType.USER)
        & policy_revokes
    )
    return _change_keys(session, user, actor, KeyCommandType.REVOKE, scope, revocation, "revoked")


def _restore_keys(session: Session, user: User, revocation: Revocation, actor: Actor) -> list[str]:
    scope = VirtualApiKey.revoked_by_revocation_id == revocation.id
    return _change_keys(
        session, user, actor, KeyCommandType.RESTORE, scope, revocation, "reactivated"
    )


def _change_keys(
    session: Session,
    user: User,
    actor: Actor,
    command: KeyCommandType,
    scope: ColumnElement[bool],
    revocation: Revocation,
    reason: str,
) -> list[str]:
    change = KeyChange(
        command=command,
        organisation_id=user.organisation_id,
        scope=scope,
        actor=actor,
        reason=reason,
        revocation_id=revocation.id,
        audit_detail={"user_id": str(user.id)},
    )
    return [str(key_id) for key_id in carry_out_key_change(session, change)]


def _require_status(user: User, expected: UserStatus, verb: str) -> None:
    if user.status is not expected:
        raise InvalidTransition(
            f"cannot {verb} a user whose status is {user.status}; it must be {expected}",
            current_status=user.status.value,
        )


def _audit(
    session: Session,
    user: User,
    actor: Actor,
    action: str,
    *,
    before: dict[str, object] | None,
    extra: dict[str, object] | None = None,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action=action,
        target_type="user",
        before=before,
        after={**user_snapshot(user), **(extra or {})},
    )
