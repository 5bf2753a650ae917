"""Users: create, find and edit; status changes go through models.actions.lifecycle.

Every operation takes a session, writes an audit event, and never commits.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit, person_lock, unique_rows
from models.actions import access_reviews, last_admin
from models.actor import Actor
from models.base import new_id, new_row, utcnow
from models.entities import (
    Organisation,
    User,
)
from models.entities.user import email_key
from models.enums import Role, UserStatus
from models.errors import Conflict, InvalidInput, NotFound
from models.import_in_flight import import_in_flight, not_waiting_on_an_import
from models.snapshots import user_snapshot
from models.text import check_identifier, clean_text, has_control_characters

# RFC 5322's specials but "@" and ".": outside a quoted string (which no identity provider
# sends) they are the structure of a header, not part of an address. "admin@corp.example,
# all-staff" has one @, and a To header reads it as two mailboxes.
HEADER_SPECIALS = frozenset(',;:<>()[]\\"')
EMAIL_PATTERN = re.compile(r'^[^@\s,;:<>()\[\]\\"]+@[^@\s,;:<>()\[\]\\"]+\.[^@\s,;:<>()\[\]\\"]+$')


def validate_email(email: str) -> str:
    """The address as stored: trimmed, composed (NFC, as RFC 6532 asks and SCIM sends)."""
    email = email.strip()
    if not email.isascii():
        email = unicodedata.normalize("NFC", email)
    if len(email) > 320 or not _well_formed(email):
        raise InvalidInput(f"{email!r} is not a valid email address", field="email")
    # An address with a zero-width or bidi character would be another person who looks the
    # same as the one without: never a distinct identity.
    return check_identifier(email, field="email")


def _well_formed(email: str) -> bool:
    """EMAIL_PATTERN matches and there is no control character. For printable ASCII, nearly
    every address, string methods give that answer at a fraction of two regex scans' cost (a
    directory import checks a hundred thousand): the only whitespace there is the space."""
    if email.isascii() and email.isprintable():
        local, _, domain = email.partition("@")
        return (
            bool(local)
            and " " not in email
            and "@" not in domain
            and "." in domain[1:-1]
            and HEADER_SPECIALS.isdisjoint(email)
        )
    return EMAIL_PATTERN.match(email) is not None and not has_control_characters(email)


def validate_name(name: str) -> str:
    return clean_text(name, field="name", max_length=200)


def find_user_by_email(session: Session, organisation_id: uuid.UUID, email: str) -> User | None:
    return session.scalar(
        select(User).where(
            User.organisation_id == organisation_id, User.email_key == email_key(email)
        )
    )


def _email_held(email: str, holder: User) -> str:
    """Why a person cannot take an email another person has. A revoked or deprovisioned
    person keeps theirs: a new identity with it (a SCIM create, a directory entry) finds and
    relinks them (models.actions.identities.provision_user), an existing one never does."""
    if holder.status is UserStatus.REVOKED:
        return (
            f"{email} belongs to a revoked person, who keeps it: a new identity with it "
            "(a SCIM create, a directory entry) brings that person back"
        )
    return f"a user with email {email} already exists"


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
    # A concurrent create of the same email may win meanwhile (then a Conflict), or a
    # directory import in flight hold it (then Busy: models.import_in_flight).
    taken = f"a user with email {email} already exists"
    with (
        not_waiting_on_an_import(session, import_in_flight(session, organisation.id)),
        unique_rows.claimed(session, lambda: Conflict(taken, field="email")),
    ):
        user = add_user(
            session,
            organisation=organisation,
            email=email,
            name=name,
            role=role,
            actor=actor,
            status=status,
        )
    return user


class Admitting(Protocol):
    """What adding a person needs of their organisation: an Organisation, or its settings
    read alone (a SCIM create, models.actions.scim.OrganisationPolicy)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def approval_required(self) -> bool: ...


def add_user(
    session: Session,
    *,
    organisation: Admitting,
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
        status = status_on_arrival(approval_required=organisation.approval_required)
    user = new_row(
        User,
        id=new_id(),
        organisation_id=organisation.id,
        name=validate_name(name),
        role=role,
        status=status,
    )
    user.set_email(email)
    session.add(user)
    audit.record_user_change(session, user, actor, "user.created", before=None)
    return user


def takes_mapped_role(user: User) -> bool:
    """Whether a role an identity provider's group mapping gives (SCIM groups, directory
    groups) is granted to this person now: not while they are REVOKED, where it would wait for
    their reactivation, decided by nobody. Taking back a role a mapping gave is not granting."""
    return user.status is not UserStatus.REVOKED


def status_on_arrival(*, approval_required: bool) -> UserStatus:
    """A new person's status, whichever source brings them (an admin, SCIM, an invitation, a
    directory import): PENDING while the organisation approves newcomers, else ACTIVE."""
    return UserStatus.PENDING if approval_required else UserStatus.ACTIVE


def _check_organisation_role(role: Role) -> None:
    if role is Role.SUPER_ADMIN:
        raise InvalidInput("SUPER_ADMIN is a platform role, not an organisation role", field="role")


def hand_on_emails(session: Session, *, moves: Sequence[tuple[User, str]], actor: Actor) -> None:
    """New emails for several people as of one moment, so an address one of them gives up is
    free for another (two addresses swapped, one handed on): edit_user, one at a time, would
    find each address still held. Checked whole before anything is written: an address held
    by someone outside the moves refuses them all. Each person is audited once, old to new."""
    wanted = [(user, validate_email(email)) for user, email in moves]
    movers = {user.id for user, _ in wanted}
    if len({email_key(email) for _, email in wanted}) != len(wanted):
        raise Conflict("two people cannot be given one email", field="email")
    for user, email in wanted:
        person_lock.read_locked(session, user)
        clash = find_user_by_email(session, user.organisation_id, email)
        if clash is not None and clash.id not in movers:
            raise Conflict(_email_held(email, clash), field="email")
    before = {user.id: user_snapshot(user) for user, _ in wanted}
    for user, _ in wanted:  # a placeholder first: no two rows hold one address at a flush
        user.set_email(f"{user.id.hex}@handing-on.invalid")
    session.flush()
    for user, email in wanted:
        user.set_email(email)
        user.updated_at = utcnow()
        audit.record_user_change(session, user, actor, "user.updated", before=before[user.id])
    session.flush()


def edit_user(
    session: Session,
    *,
    user: User,
    actor: Actor,
    name: str | None = None,
    email: str | None = None,
    role: Role | None = None,
    review_drop: bool = True,
) -> User:
    """Change profile fields (a status change is models.actions.lifecycle's). The person is
    locked and read again first, so two edits at once chain as if one came after the other.
    `review_drop` False: a caller changing many people reviews their role drops together
    (access_reviews.review_role_drops)."""
    person_lock.read_locked(session, user)
    before = user_snapshot(user)
    if name is not None:
        user.name = validate_name(name)
    if email is not None and email.strip() != user.email:
        email = validate_email(email)
        clash = find_user_by_email(session, user.organisation_id, email)
        if clash is not None and clash.id != user.id:
            raise Conflict(_email_held(email, clash), field="email")
        user.set_email(email)
    if role is not None:
        if role is Role.SUPER_ADMIN:
            raise InvalidInput("SUPER_ADMIN cannot be granted here", field="role")
        if role is not Role.ORG_ADMIN:
            cause = last_admin.Cause.ROLE_DROPPED
            last_admin.before_losing_admin(session, user=user, actor=actor, cause=cause)
        user.role = role
    if user_snapshot(user) != before:
        user.updated_at = utcnow()
        audit.record_user_change(session, user, actor, "user.updated", before=before)
    if review_drop and user.role.rank < Role(before["role"]).rank:
        access_reviews.review_role_drop(
            session, user=user, before=Role(before["role"]), actor=actor
        )
    return user
