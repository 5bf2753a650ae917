"""The last Organisation Admin: an organisation never loses its last ACTIVE ORG_ADMIN to an
admin's own change, and never silently to an identity source's.

Without one, nobody can use the console or the admin API of the organisation. So a change an
admin makes (the admin API, the console, the CLI) that would leave no ACTIVE ORG_ADMIN (a
revocation, a role drop, an end date already passed) is refused, nothing changed (LastAdmin,
a 409). A change an identity source makes (SCIM, LDAP, an IdP event, the schedule at an end
date) is never refused, since a leaver is cut off at once; when it leaves no ACTIVE
ORG_ADMIN it is audited (`organisation.no_active_admin`, with its cause) and announced through
the organisation's notification hooks (no admin is left to receive it), so that an operator
restores one (README, "When no admin is left").

Every operation that ends a person's admin access asks here first (models.actions.lifecycle,
models.actions.users, models.actions.access_end), after locking the person. The decision is
made under the organisation row's lock (PostgreSQL: FOR NO KEY UPDATE, which inserts that
refer to the organisation do not wait for), taken only when an ACTIVE ORG_ADMIN is about to
lose access: two admins demoting each other at once compose as if serial, the later refused.
The row is locked after the people, and no person after it (models.person_lock: a batch locks
everyone it may change up front). SQLite runs one writer at a time (BEGIN IMMEDIATE,
models.db).
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import audit, person_lock
from models.actor import Actor
from models.entities import User
from models.enums import Role, Source, UserStatus
from models.errors import Conflict
from models.notifications import notify

NO_ACTIVE_ADMIN = "organisation.no_active_admin"
# Sources whose changes are a person's own decision at a keyboard, refused rather than recorded.
INTERACTIVE = frozenset({Source.ADMIN})
RECOVERY = (
    "an operator restores an admin with the CLI: `odock-sync users create --org <slug> "
    "--email <email> --name <name> --role ORG_ADMIN` (and `odock-sync token create --org "
    "<slug> --scope admin --user <email>`), or `odock-sync users reactivate`"
)


class Cause(StrEnum):
    """How a person loses their admin access."""

    REVOKED = "revoked"
    ROLE_DROPPED = "role_dropped"
    ACCESS_END_PASSED = "access_end_passed"


class LastAdmin(Conflict):
    """The change would leave the organisation with no ACTIVE Organisation Admin."""

    code = "last_admin"


def before_losing_admin(
    session: Session, *, user: User, actor: Actor, cause: Cause, ends_now: bool = True
) -> None:
    """Call before a change that ends `user`'s admin access (the caller locked the person).
    An admin's change that leaves no other ACTIVE ORG_ADMIN raises LastAdmin; a source's is
    audited and announced. `ends_now` False: the access ends later by the schedule (a passed
    end date), which records it then; only an admin's change is decided now."""
    if user.role is not Role.ORG_ADMIN or user.status is not UserStatus.ACTIVE:
        return
    interactive = actor.source in INTERACTIVE
    if not interactive and not ends_now:
        return
    _lock_admins(session, user.organisation_id)
    if _other_active_admins(session, user) > 0:
        return
    if interactive:
        raise LastAdmin(
            f"{user.email} is the organisation's last active Organisation Admin; "
            f"{_verb(cause)} them would lock everyone out of the console and the admin API. "
            "Make another person ORG_ADMIN first; nothing was changed",
            user_id=str(user.id),
            cause=cause.value,
        )
    _announce(session, user=user, actor=actor, cause=cause)


def _lock_admins(session: Session, organisation_id: uuid.UUID) -> None:
    """The organisation's admin set, locked until commit: who else is an ACTIVE ORG_ADMIN
    is read after it, so of two changes at once the later reads the earlier's result."""
    person_lock.lock_organisation(session, organisation_id)


def _other_active_admins(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.organisation_id == user.organisation_id,
                User.id != user.id,
                User.role == Role.ORG_ADMIN,
                User.status == UserStatus.ACTIVE,
            )
        )
        or 0
    )


def _announce(session: Session, *, user: User, actor: Actor, cause: Cause) -> None:
    after = {
        "cause": cause.value,
        "source": actor.source.value,
        "actor": str(actor),
        "user_id": str(user.id),
        "email": user.email,
        "recovery": RECOVERY,
    }
    audit.record(
        session,
        actor=actor,
        organisation_id=user.organisation_id,
        action=NO_ACTIVE_ADMIN,
        target_type="organisation",
        target_id=user.organisation_id,
        after=after,
    )
    message = (
        f"The organisation has no active Organisation Admin: {actor.source.value} "
        f"{_PAST[cause]} {user.email}, the last one. Nobody can use the console or the admin "
        f"API until {RECOVERY}."
    )
    # To the hooks: nobody is left to receive it as an admin.
    notify(
        session,
        organisation_id=user.organisation_id,
        event=NO_ACTIVE_ADMIN,
        payload={**after, "message": message},
    )


def _verb(cause: Cause) -> str:
    return {
        Cause.REVOKED: "revoking",
        Cause.ROLE_DROPPED: "demoting",
        Cause.ACCESS_END_PASSED: "ending the access of",
    }[cause]


_PAST = {
    Cause.REVOKED: "revoked",
    Cause.ROLE_DROPPED: "demoted",
    Cause.ACCESS_END_PASSED: "ended the access of",
}
