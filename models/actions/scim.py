"""What a SCIM client (an IdP) may do: provision, replace, deactivate and delete users, and
keep groups as teams. Every change goes through the shared user and team operations, so the
revocation review, notifications and the audit trail follow as for an admin's change.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Exists,
    Select,
    Uuid,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, contains_eager, joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.strategy_options import _AbstractLoad

from connectors.name_keys import name_key
from connectors.scim.casting import GroupRef
from connectors.scim.errors import InvalidValue, ScimError
from connectors.scim.fields import ScimGroupFields, ScimUserFields
from connectors.scim.ids import named_id
from connectors.scim.member_patch import MemberSteps
from connectors.scim.schemas import MANAGER_VALUE, MEMBER_VALUE
from models import (
    audit,
    driver_writes,
    loaded_rows,
    membership_locks,
    person_lock,
    unique_rows,
)
from models.actions import access_end, access_reviews, lifecycle, mass_change
from models.actions import teams as team_actions
from models.actions import users as user_actions
from models.actions.identities import find_link, mark_link_deleted, provision_user
from models.actions.users import Admitting
from models.actor import Actor
from models.base import new_id, new_row, utcnow
from models.db import PREPARED
from models.entities import (
    AuditEvent,
    IdentityLink,
    MassChangeSettings,
    Organisation,
    OrganisationSettings,
    RevocationReview,
    ScimEmail,
    ScimGroupRole,
    ScimUser,
    Team,
    TeamMembership,
    User,
)
from models.entities.user import email_key
from models.enums import (
    ChangeKind,
    ReviewStatus,
    Role,
    ScimDeletePolicy,
    Source,
    TeamRole,
    UserStatus,
)
from models.errors import Conflict, DomainError, InvalidInput, NotFound
from models.import_in_flight import in_flight_clause, in_flight_values, not_waiting_on_an_import
from models.queries import scim_records
from models.row_writes import Guard, GuardRefused, insert_new
from models.snapshots import user_snapshot
from models.text import check_identifier

# --- users -----------------------------------------------------------------------------


def get_scim_user(
    session: Session, organisation_id: uuid.UUID, scim_id: str, *, for_update: bool = False
) -> ScimUser:
    """This organisation's SCIM user; anything else (another tenant's, a bad id) is 404.
    `for_update`: locked first, as `lock_scim_user` does."""
    if for_update:
        return lock_scim_user(session, organisation_id, scim_id).scim_user
    found = session.get(
        ScimUser,
        _uuid(scim_id, "user"),
        options=_user_load(),
        # Prepared (planned once per connection): planning its six joins cost PostgreSQL
        # 0.9 ms, four times its execution.
        execution_options={PREPARED: True},
    )
    if found is None or found.organisation_id != organisation_id:
        raise NotFound(f"user {scim_id} not found")
    return found


@functools.cache
def _user_load() -> tuple[_AbstractLoad, ...]:
    """One round trip: the user, emails and groups joined (a SCIM answer shows all three),
    and the organisation with its settings (the answer follows its end-date attribute).
    Built once per process: building the options cost a write 0.2-0.3 ms."""
    organisation = joinedload(ScimUser.organisation)
    return (joinedload(ScimUser.emails), joinedload(ScimUser.groups), organisation)


@dataclass(frozen=True)
class LockedUser:
    """A SCIM user locked for a write, the attribute its organisation's IdP sends an access
    end date in (its answer and its PUT or PATCH follow it), and the SCIM groups its person
    is in (a user's write never changes them; its answer shows them)."""

    scim_user: ScimUser
    access_end_attribute: str
    groups: list[GroupRef]


def lock_scim_user(
    session: Session, organisation_id: uuid.UUID, scim_id: str, *, leaving: bool = False
) -> LockedUser:
    """This organisation's SCIM user (404 otherwise), with its row lock, the one that makes
    concurrent writes of it serial; read after the lock, in one statement: the user, its
    person, emails and groups, the mass-change gate's thresholds (a deactivation passes the
    gate) and what a revocation of the person has to end (lifecycle.read_holdings).

    `leaving`: the write (a DELETE) changes the teams the person is in as well; those are
    locked first (models.membership_locks: teams before people), or a group write holding
    one of them and waiting for this person would wait for a write waiting for its team."""
    key = _uuid(scim_id, "user")
    if leaving:
        _lock_teams_and_user(session, key, organisation_id)
    else:
        _lock_user(session, key, organisation_id)
    values = {"scim_id": key, "organisation_id": organisation_id}
    dialect = session.get_bind().dialect.name
    rows = driver_writes.run(session, _locked_read(dialect), values)
    if not rows:
        raise NotFound(f"user {scim_id} not found")
    read = _LockedRead.of(rows[0])
    scim_user = read.entities(session) or _locked_entities(session, values)
    person_lock.mark_read_locked(session, [scim_user.user_id])
    holdings = lifecycle.Holdings.of_found(scim_user.user_id, read.held, keys=read.keys)
    lifecycle.read_holdings(session, holdings)
    mass_change.read_thresholds(session, scim_user.organisation_id, read.thresholds)
    return LockedUser(scim_user, read.access_end_attribute, read.groups)


LEAVING_TRIES = 5


def _lock_teams_and_user(session: Session, key: uuid.UUID, organisation_id: uuid.UUID) -> None:
    """The teams the SCIM user's person is in, then the user (models.membership_locks). The
    teams are read before any lock; a team the person joined before the person's lock was
    had would be locked after it, so they are read again under it and, when they changed,
    the locks are let go (a savepoint rolled back: PostgreSQL releases its row locks) and
    taken again in order. Not closed: a team the person joins once they are held (by a
    writer that does not lock them, such as an admin's add) is still moved after them."""
    teams = _teams_of(session, key, organisation_id)
    for attempt in range(LEAVING_TRIES):
        savepoint = session.begin_nested()
        membership_locks.lock_teams(session, teams)
        _lock_user(session, key, organisation_id)
        now = _teams_of(session, key, organisation_id)
        if now <= teams or attempt == LEAVING_TRIES - 1:
            savepoint.commit()
            return
        savepoint.rollback()
        teams = now


def _teams_of(session: Session, scim_id: uuid.UUID, organisation_id: uuid.UUID) -> set[uuid.UUID]:
    """The teams the SCIM user's person is in, as they are now."""
    return set(
        session.scalars(
            select(TeamMembership.team_id)
            .join(ScimUser, ScimUser.user_id == TeamMembership.user_id)
            .where(ScimUser.id == scim_id, ScimUser.organisation_id == organisation_id)
        )
    )


SCIM_USER_COLUMNS = tuple(p.key for p in ScimUser.__mapper__.column_attrs)
PERSON_COLUMNS = tuple(p.key for p in User.__mapper__.column_attrs)


@dataclass(frozen=True)
class _LockedRead:
    """lock_scim_user's row: the SCIM user's columns and its person's, its emails, and what
    the write needs of its organisation and of what the person holds."""

    scim_user: dict[str, Any]
    person: dict[str, Any]
    emails: list[dict[str, Any]]
    groups: list[GroupRef]
    access_end_attribute: str
    thresholds: mass_change.Thresholds
    held: tuple[bool, ...]
    keys: bool

    @classmethod
    def of(cls, row: Sequence[Any]) -> _LockedRead:
        split = len(SCIM_USER_COLUMNS)
        scim_user = dict(zip(SCIM_USER_COLUMNS, row[:split], strict=True))
        person_end = split + len(PERSON_COLUMNS)
        person = dict(zip(PERSON_COLUMNS, row[split:person_end], strict=True))
        attribute, has_thresholds, *limits = row[person_end : person_end + 6]
        emails, groups, keys, *held = row[person_end + 6 :]
        email_rows = sorted(json.loads(emails) if emails else [], key=lambda e: e[0])
        return cls(
            scim_user=scim_user,
            person=person,
            emails=[
                {
                    "id": uuid.UUID(email_id),
                    "organisation_id": scim_user["organisation_id"],
                    "scim_user_id": scim_user["id"],
                    "position": position,
                    "value": value,
                    "value_key": value_key,
                    "type": kind,
                    "primary": None if primary is None else bool(primary),
                }
                for position, email_id, value, value_key, kind, primary in email_rows
            ],
            groups=scim_records.group_refs(groups),
            access_end_attribute=attribute,
            # No row: the organisation has the default thresholds.
            thresholds=mass_change.Thresholds(*limits if has_thresholds else ()),
            held=tuple(held),
            keys=bool(keys),
        )

    def entities(self, session: Session) -> ScimUser | None:
        """The SCIM user, its person and emails as entities in the session, as a load would
        leave them; None when the session holds any of them already (see attach_loaded)."""
        scim_user = new_row(ScimUser, **self.scim_user)
        person = new_row(User, **self.person)
        emails = [new_row(ScimEmail, **email) for email in self.emails]
        set_committed_value(scim_user, "user", person)
        set_committed_value(scim_user, "emails", emails)
        for email in emails:
            set_committed_value(email, "scim_user", scim_user)
        if not loaded_rows.attach_loaded(session, [scim_user, person, *emails]):
            return None
        return scim_user


@functools.cache
def _locked_read(dialect: str) -> Select[Any]:
    """lock_scim_user's read, built once per dialect: rows, not entities (the ORM's loading
    of the user, its person, emails and groups cost a write more CPU than the statement),
    its organisation's settings as the two values a write needs of them."""
    emails = scim_records.json_rows(
        ScimEmail.position,
        scim_records.id_text(dialect, ScimEmail.id),
        ScimEmail.value,
        ScimEmail.value_key,
        ScimEmail.type,
        ScimEmail.primary,
    )
    return (
        select(
            *(getattr(ScimUser, key) for key in SCIM_USER_COLUMNS),
            *(getattr(User, key) for key in PERSON_COLUMNS),
            OrganisationSettings.scim_access_end_attribute,
            MassChangeSettings.organisation_id.is_not(None),
            MassChangeSettings.enabled,
            MassChangeSettings.threshold_count,
            MassChangeSettings.threshold_percent,
            MassChangeSettings.window_minutes,
            select(emails).where(ScimEmail.scim_user_id == ScimUser.id).scalar_subquery(),
            scim_records.group_rows(dialect),
            lifecycle.keys_held_by(User.id),
            *lifecycle.held_by(User.id),
        )
        .join(User, User.id == ScimUser.user_id)
        .join(
            OrganisationSettings,
            OrganisationSettings.organisation_id == ScimUser.organisation_id,
        )
        .outerjoin(
            MassChangeSettings, MassChangeSettings.organisation_id == ScimUser.organisation_id
        )
        .where(
            ScimUser.id == bindparam("scim_id", type_=Uuid()),
            ScimUser.organisation_id == bindparam("organisation_id", type_=Uuid()),
        )
    )


def _locked_entities(session: Session, values: dict[str, Any]) -> ScimUser:
    """The locked SCIM user loaded as entities the usual way, over what the session holds of
    them (read afresh: another request's write may have changed them since)."""
    return (
        session.execute(
            _locked_load(), values, execution_options={PREPARED: True, "populate_existing": True}
        )
        .unique()
        .scalar_one()
    )


@functools.cache
def _locked_load() -> Select[ScimUser]:
    return (
        select(ScimUser)
        .join(ScimUser.user)
        .options(contains_eager(ScimUser.user), joinedload(ScimUser.emails))
        .where(
            ScimUser.id == bindparam("scim_id"),
            ScimUser.organisation_id == bindparam("organisation_id"),
        )
    )


def scim_user_named(
    session: Session, organisation_id: uuid.UUID, user_name: str
) -> uuid.UUID | None:
    """The id of this organisation's SCIM user of that userName (its id alone: a check for a
    clash needs no entity)."""
    return session.scalar(
        select(ScimUser.id).where(
            ScimUser.organisation_id == organisation_id,
            ScimUser.user_name_key == user_name.lower(),
        )
    )


@dataclass(frozen=True)
class OrganisationPolicy:
    """What a SCIM create needs of its organisation: whether a new person waits for
    approval, and the attribute its IdP sends an access end date in."""

    id: uuid.UUID
    approval_required: bool
    scim_access_end_attribute: str


@dataclass(frozen=True)
class CreateCheck:
    """What a create learns before it writes: its organisation's policy, whether the
    userName is taken and whether a person of the organisation has the primary email.
    `assumed`: not looked up but assumed (assume_create), held to by the write itself."""

    organisation: OrganisationPolicy
    user_name_taken: bool
    email_known: bool
    assumed: bool = False
    # A directory import of the organisation holds people not yet committed (PostgreSQL).
    import_in_flight: bool = False


# The policy each organisation's last create found (check_create), by its id: what the next
# create of the organisation assumes, and its write checks (assume_create).
_POLICIES: dict[uuid.UUID, OrganisationPolicy] = {}
_REMEMBERED_POLICIES = 10_000


def assume_create(session: Session, organisation_id: uuid.UUID) -> CreateCheck | None:
    """The look-ups of a create folded into its write (PostgreSQL): the organisation's
    policy as its last create found it, the userName free and the email nobody's. The
    create's one statement writes its rows only if all of that still holds
    (`row_writes.GuardRefused` otherwise, nothing written); the caller then checks and
    creates as usual. None when this cannot be assumed (no create of the organisation seen
    by this process, or SQLite, which writes a create's rows in several statements)."""
    policy = _POLICIES.get(organisation_id)
    if policy is None or session.get_bind().dialect.name != "postgresql":
        return None
    return CreateCheck(policy, user_name_taken=False, email_known=False, assumed=True)


def check_create(
    session: Session, organisation_id: uuid.UUID, fields: ScimUserFields
) -> CreateCheck:
    """A create's look-ups in one statement, read alone: loading the organisation and its
    settings as entities cost about 0.5 ms of CPU for two values, and a statement of its own
    a round trip. Without a primary email none is found (the create is refused later, after
    a userName clash, as before)."""
    try:
        email: str | None = email_key(fields.primary_email())
    except InvalidValue:
        email = None
    values = {
        "organisation_id": organisation_id,
        "user_name_key": fields.user_name.lower(),
        "email_key": email,
        **in_flight_values(organisation_id),
    }
    postgresql = session.get_bind().dialect.name == "postgresql"
    # On the session's connection: a Core statement needs none of the ORM's execution.
    approval, attribute, taken, known, importing = (
        session.connection()
        .execute(_create_check(postgresql), values, execution_options={PREPARED: True})
        .one()
    )
    organisation = OrganisationPolicy(organisation_id, approval, attribute)
    if taken or known:
        # What the next create would assume did not hold for this one: an IdP pushing people
        # the organisation already has (an import, links by email) looks each up first
        # instead of paying a refused write before every look-up.
        _POLICIES.pop(organisation_id, None)
    else:
        if len(_POLICIES) >= _REMEMBERED_POLICIES:
            _POLICIES.clear()
        _POLICIES[organisation_id] = organisation
    return CreateCheck(organisation, bool(taken), bool(known), import_in_flight=bool(importing))


@functools.cache
def _create_check(postgresql: bool) -> Select[bool, str, bool, bool, bool]:
    """check_create's statement, built once per process (its values bound at each execution)."""
    organisation_id: BindParameter[uuid.UUID] = bindparam("organisation_id")
    named = _user_name_taken(organisation_id, bindparam("user_name_key"))
    owned = exists().where(
        User.organisation_id == organisation_id, User.email_key == bindparam("email_key")
    )
    return select(
        OrganisationSettings.approval_required,
        OrganisationSettings.scim_access_end_attribute,
        named,
        owned,
        in_flight_clause() if postgresql else false(),
    ).where(OrganisationSettings.organisation_id == organisation_id)


def _create_guard(session: Session, checked: CreateCheck, fields: ScimUserFields) -> Guard:
    """What an assumed create's write holds to: check_create would find what was assumed."""
    values = {
        "guard_organisation_id": checked.organisation.id,
        "guard_approval_required": checked.organisation.approval_required,
        "guard_attribute": checked.organisation.scim_access_end_attribute,
        "guard_user_name_key": fields.user_name.lower(),
        "guard_email_key": email_key(fields.primary_email()),
        **in_flight_values(checked.organisation.id, prefix="guard_"),
    }
    return Guard(_create_guard_sql(session.get_bind().dialect), values)


@functools.cache
def _create_guard_sql(dialect: Dialect) -> str:
    """_create_guard's condition as SQL in the driver's style, compiled once per process."""
    organisation_id: BindParameter[uuid.UUID] = bindparam("guard_organisation_id", type_=Uuid())
    settings = exists().where(
        OrganisationSettings.organisation_id == organisation_id,
        OrganisationSettings.approval_required == bindparam("guard_approval_required"),
        OrganisationSettings.scim_access_end_attribute == bindparam("guard_attribute"),
    )
    named = _user_name_taken(organisation_id, bindparam("guard_user_name_key"))
    owned = exists().where(
        User.organisation_id == organisation_id, User.email_key == bindparam("guard_email_key")
    )
    # An import in flight may hold the email uncommitted: then the create is checked first.
    importing = in_flight_clause(prefix="guard_")
    return str(and_(settings, ~named, ~owned, ~importing).compile(dialect=dialect))


def create_pushed_user(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    fields: ScimUserFields,
    access_end_by: Callable[[str], datetime | None],
    actor: Actor,
) -> tuple[ScimUser, str]:
    """A SCIM create: the person provisioned, with the organisation's end-date attribute
    their document is rendered with. `access_end_by(attribute)` reads the end date from the
    pushed document; the attribute comes with the create's look-ups, so a bad date is refused
    (400) after a clash they found (409). On PostgreSQL the look-ups are first assumed and
    folded into the write (assume_create); when that does not hold, nothing is written and the
    create is looked up and made as usual, which answers what it would have answered. The
    look-ups also say whether a directory import holds people uncommitted: then the create
    does not wait for it (models.import_in_flight)."""
    check_identifiers(fields)
    assumed = assume_create(session, organisation_id)
    if assumed is not None:
        created = _create_as_assumed(session, assumed, fields, access_end_by, actor)
        if created is not None:
            return created
    checked = check_create(session, organisation_id, fields)
    with not_waiting_on_an_import(session, checked.import_in_flight):
        return _create_checked(session, checked, fields, access_end_by, actor)


def _create_as_assumed(
    session: Session,
    assumed: CreateCheck,
    fields: ScimUserFields,
    access_end_by: Callable[[str], datetime | None],
    actor: Actor,
) -> tuple[ScimUser, str] | None:
    """The create in one statement that holds to what it assumed; None when that did not
    hold or the create was refused, with its unwritten objects dropped."""
    try:
        with session.no_autoflush:  # nothing is written but by the guarded statement
            return _create_checked(session, assumed, fields, access_end_by, actor)
    except (GuardRefused, DomainError, ScimError):
        for unwritten in list(session.new):
            if unwritten in session:  # not gone with its parent (expunge cascades)
                session.expunge(unwritten)
        return None


def _create_checked(
    session: Session,
    checked: CreateCheck,
    fields: ScimUserFields,
    access_end_by: Callable[[str], datetime | None],
    actor: Actor,
) -> tuple[ScimUser, str]:
    attribute = checked.organisation.scim_access_end_attribute
    fields = replace(fields, access_ends_at=access_end_by(attribute))
    scim_user = create_scim_user(
        session, organisation=checked.organisation, fields=fields, actor=actor, checked=checked
    )
    session.flush()  # a person linked, not created, is written by the flush
    return scim_user, attribute


def create_scim_user(
    session: Session,
    *,
    organisation: Admitting,
    fields: ScimUserFields,
    actor: Actor,
    checked: CreateCheck | None = None,
) -> ScimUser:
    """Provision a person: linked to an existing user with the same email, else created.
    `checked`: check_create's answer for these fields, when the caller has made it, or
    assume_create's (its rows written only if it holds; row_writes.GuardRefused if not)."""
    checked = checked or check_create(session, organisation.id, fields)
    if checked.assumed and (fields.active is False or fields.access_ends_at is not None):
        # A create inactive or with an end date writes more than its rows (a revocation,
        # a review) and flushes: its look-ups are made first, as always.
        raise GuardRefused
    taken, email_known = checked.user_name_taken, checked.email_known
    if taken:
        raise Conflict(f"userName {fields.user_name} is already taken", field="userName")
    _check_manager(session, organisation.id, fields.manager_id)
    scim_id = new_id()
    provisioned = provision_user(
        session,
        organisation=organisation,
        source=Source.SCIM,
        external_id=str(scim_id),
        email=fields.primary_email(),
        name=fields.person_name(),
        actor=actor,
        fresh_external_id=True,
        new_email=not email_known,
    )
    user = provisioned.user
    if not provisioned.created:
        if session.scalar(select(ScimUser.id).where(ScimUser.user_id == user.id)):
            raise Conflict(f"{user.email} is already provisioned by SCIM", field="emails")
        user_actions.edit_user(session, user=user, name=fields.person_name(), actor=actor)
    scim_user = new_row(ScimUser, id=scim_id, organisation_id=organisation.id, user_id=user.id)
    scim_user.user = user
    if provisioned.created:
        set_committed_value(scim_user, "groups", [])  # a new person is in no team: no query
    _store(scim_user, fields)
    session.add(scim_user)
    # The date first, as replace_scim_user: a person linked by email whom the schedule
    # revoked comes back only when `active` is judged on the renewed date (lifecycle.end_extended).
    access_end.set_access_end(session, user=user, ends_at=fields.access_ends_at, actor=actor)
    if fields.active is not None:
        # Nobody loses access when a person is created inactive: nothing to gate.
        _set_active(session, scim_user, fields.active, actor, gated=not provisioned.created)
    if not provisioned.created:
        _leave_scim_groups(session, user, actor)
    _audit(session, scim_user, actor, "scim.user.created", before=None)
    if provisioned.created:
        guard = _create_guard(session, checked, fields) if checked.assumed else None
        insert_new(session, NEW_PERSON_ROWS, guard)
    return scim_user


# What creating a person writes (when nothing else, such as a revocation, joined it).
NEW_PERSON_ROWS = (User, IdentityLink, ScimUser, ScimEmail, AuditEvent)
# What a write of a user adds that is written as plain rows when it is all that is new
# (models.change_writes): its audit events, and a revocation's rows.
WRITTEN_ROWS = lifecycle.PLAIN_ROWS


def check_identifiers(fields: ScimUserFields) -> None:
    """The userName and every email name someone uniquely: none holds an invisible or
    direction-changing character (models.text.check_identifier; 400 invalidValue). The
    names (givenName, displayName...) may, and are shown with markers."""
    check_identifier(fields.user_name, field="userName")
    for email in fields.emails:
        check_identifier(email.value, field="emails")


def _user_name_taken(organisation_id: Any, user_name_key: Any) -> Exists:
    """Whether a SCIM user of the organisation has the userName (values or bound parameters)."""
    return exists().where(
        ScimUser.organisation_id == organisation_id, ScimUser.user_name_key == user_name_key
    )


def replace_scim_user(
    session: Session, *, scim_user: ScimUser, fields: ScimUserFields, actor: Actor
) -> ScimUser:
    """Bring the user to what the IdP asserts (PUT, and PATCH after it is applied)."""
    check_identifiers(fields)
    before = scim_snapshot(scim_user)
    if fields.user_name.lower() != scim_user.user_name_key:
        clash = scim_user_named(session, scim_user.organisation_id, fields.user_name)
        if clash is not None and clash != scim_user.id:
            raise Conflict(f"userName {fields.user_name} is already taken", field="userName")
    if fields.manager_id != scim_user.manager_id:
        _check_manager(session, scim_user.organisation_id, fields.manager_id)
    user = scim_user.user
    user_actions.edit_user(
        session, user=user, name=fields.person_name(), email=fields.primary_email(), actor=actor
    )
    _store(scim_user, fields)
    # The date first: a later one is what lets `active` take back the schedule's revocation
    # at the date it replaces (a renewed contract, see lifecycle.end_extended).
    access_end.set_access_end(session, user=user, ends_at=fields.access_ends_at, actor=actor)
    if fields.active is not None:
        _set_active(session, scim_user, fields.active, actor)
    if scim_snapshot(scim_user) != before:
        scim_user.updated_at = utcnow()
        _audit(session, scim_user, actor, "scim.user.updated", before=before)
    return scim_user


def delete_scim_user(session: Session, *, scim_user: ScimUser, actor: Actor) -> None:
    """DELETE: revoke through the shared operation, mark the link deleted, forget the SCIM
    record (the user row stays, with its keys and history, for the revocation review)."""
    user = scim_user.user
    gate = mass_change.GateRequest(ChangeKind.DELETE, reason="SCIM DELETE")
    lifecycle.set_active(
        session, user=user, active=False, actor=actor, reason=gate.reason, gate=gate
    )
    link = find_link(session, scim_user.organisation_id, Source.SCIM, str(scim_user.id))
    if link is not None:
        mark_link_deleted(session, link=link, actor=actor)
    _take_back_granted_role(session, scim_user, actor)
    _audit(session, scim_user, actor, "scim.user.deleted", before=scim_snapshot(scim_user))
    _touch_groups_of(session, user)
    _forget_as_manager(session, scim_user, actor)
    session.delete(scim_user)
    session.flush()


def _leave_scim_groups(session: Session, user: User, actor: Actor) -> None:
    """A person given a new SCIM identity starts in none of the organisation's SCIM groups:
    the IdP pushes the memberships it wants, and pushes only changes, so one a deleted SCIM
    user left behind would never be taken back. Teams of other sources are not the IdP's.
    After the create's reactivation: a person back at work who created keys in a team
    they leave gets that team's access review (a revoked one's revocation review lists them)."""
    groups = session.scalars(
        select(Team)
        .join(TeamMembership)
        .where(TeamMembership.user_id == user.id, Team.external_source == Source.SCIM)
        .order_by(Team.id)  # the order membership_locks takes teams in (a DELETE's, too)
    ).all()
    now = utcnow()
    for team in groups:
        team_actions.remove_from_team(session, team=team, user=user, actor=actor)
        team.updated_at = now  # the group's meta.lastModified moves with its members


def _take_back_granted_role(session: Session, scim_user: ScimUser, actor: Actor) -> None:
    """A role a mapped group granted came with this SCIM user: it ends with it, or a later
    create of the same person (linked by email) would find an org-admin that no group makes
    one any more. Only once the person is revoked: a DELETE the mass-change gate holds
    leaves the role to the admin's decision, as it leaves the access. An admin's later
    change of role is not the grant's and stays (as in apply_group_roles)."""
    user, granted, before = scim_user.user, scim_user.granted_role, scim_user.role_before_grant
    if user.status is not UserStatus.REVOKED or before is None or user.role is not granted:
        return
    user_actions.edit_user(session, user=user, role=before, actor=actor)


def _touch_groups_of(session: Session, user: User) -> None:
    """The groups listing a deleted SCIM user lose a member: their meta.lastModified moves,
    as with any other change of their members."""
    now = utcnow()
    listing = select(Team).join(TeamMembership).where(TeamMembership.user_id == user.id)
    for team in session.scalars(listing):
        team.updated_at = now


def _forget_as_manager(session: Session, scim_user: ScimUser, actor: Actor) -> None:
    """A deleted user manages nobody: a manager is a user of the organisation (_check_manager)
    and a deleted one answers 404 (RFC 7644 section 3.6), so the reports that named it lose
    the manager, as its groups lose the member (each audited, meta.lastModified moving)."""
    reports = session.scalars(
        select(ScimUser)
        .where(
            ScimUser.organisation_id == scim_user.organisation_id,
            # Stored as the IdP sent it; our ids are lower-case UUIDs.
            func.lower(ScimUser.manager_id) == str(scim_user.id),
            ScimUser.id != scim_user.id,  # their own manager: deleted, not updated
        )
        .order_by(ScimUser.id)
        .with_for_update(of=ScimUser)  # not the joined person (an outer join's nullable side)
    )
    now = utcnow()
    for report in reports:
        before = scim_snapshot(report)
        report.manager_id = None
        report.updated_at = now
        _audit(session, report, actor, "scim.user.updated", before=before)


def _check_manager(session: Session, organisation_id: uuid.UUID, manager_id: str | None) -> None:
    """A manager is another SCIM user of the same organisation, named by its SCIM id."""
    if manager_id is None:
        return
    key = _uuid(manager_id, "manager", invalid=InvalidInput, case_exact=MANAGER_VALUE.case_exact)
    found = session.scalar(
        select(ScimUser.id).where(ScimUser.id == key, ScimUser.organisation_id == organisation_id)
    )
    if found is None:
        raise InvalidInput(
            f"manager {manager_id} is not a user of this organisation", field="manager"
        )


def _set_active(
    session: Session, scim_user: ScimUser, active: bool, actor: Actor, *, gated: bool = True
) -> None:
    """Apply the IdP's `active` through the lifecycle. A revocation the mass-change gate holds
    shows as active=false (what the IdP set) until an admin decides."""
    reason = f"SCIM active={'true' if active else 'false'}"
    gate = mass_change.GateRequest(ChangeKind.DEACTIVATE, reason=reason) if gated else None
    outcome = lifecycle.set_active(
        session, user=scim_user.user, active=active, actor=actor, reason=reason, gate=gate
    )
    scim_user.held_inactive = outcome is lifecycle.Outcome.HELD


def _store(scim_user: ScimUser, fields: ScimUserFields) -> None:
    scim_user.set_user_name(fields.user_name)
    scim_user.external_id = fields.external_id
    scim_user.given_name = fields.given_name
    scim_user.family_name = fields.family_name
    scim_user.formatted_name = fields.formatted_name
    scim_user.display_name = fields.display_name
    scim_user.employee_number = fields.employee_number
    scim_user.department = fields.department
    scim_user.manager_id = fields.manager_id
    scim_user.extra = dict(fields.extra)
    wanted = [(e.value, e.type, e.primary) for e in fields.emails]
    if [(e.value, e.type, e.primary) for e in scim_user.emails] != wanted:
        scim_user.emails = [
            new_row(
                ScimEmail,
                organisation_id=scim_user.organisation_id,
                position=position,
                value=email.value,
                value_key=email_key(email.value),
                type=email.type,
                primary=email.primary,
            )
            for position, email in enumerate(fields.emails)
        ]


def scim_snapshot(scim_user: ScimUser) -> dict[str, Any]:
    return {
        "scim_id": str(scim_user.id),
        "user_id": str(scim_user.user_id),
        "userName": scim_user.user_name,
        "externalId": scim_user.external_id,
        "givenName": scim_user.given_name,
        "familyName": scim_user.family_name,
        "formatted": scim_user.formatted_name,
        "displayName": scim_user.display_name,
        "emails": [[e.value, e.type, e.primary] for e in scim_user.emails],
        "employeeNumber": scim_user.employee_number,
        "department": scim_user.department,
        "manager": scim_user.manager_id,
        "extra": scim_user.extra,
        "active": scim_user.user.status is not UserStatus.REVOKED and not scim_user.held_inactive,
    }


def _audit(
    session: Session, scim_user: ScimUser, actor: Actor, action: str, *, before: Any
) -> None:
    after = None if action.endswith("deleted") else scim_snapshot(scim_user)
    audit.record(
        session,
        actor=actor,
        organisation_id=scim_user.organisation_id,
        action=action,
        target_type="user",
        target_id=scim_user.user_id,
        before=before,
        after=after,
    )


# --- groups ----------------------------------------------------------------------------


def get_scim_group(
    session: Session, organisation_id: uuid.UUID, group_id: str, *, for_update: bool = False
) -> Team:
    key = _uuid(group_id, "group")
    if for_update:
        # The group as a whole, first (models.membership_locks): its members are read and
        # set under this lock, and the people whose mapped role changes are locked after it.
        membership_locks.lock_teams(session, [key], whole=True, organisation_id=organisation_id)
    team = session.get(Team, key, populate_existing=for_update)
    if team is None or team.organisation_id != organisation_id:
        raise NotFound(f"group {group_id} not found")
    if team.external_source is not Source.SCIM:
        raise NotFound(f"group {group_id} not found")
    return team


def create_scim_group(
    session: Session, *, organisation: Organisation, fields: ScimGroupFields, actor: Actor
) -> Team:
    team = team_actions.create_team(
        session,
        organisation=organisation,
        name=fields.display_name,
        actor=actor,
        external_source=Source.SCIM,
        external_id=fields.external_id,
    )
    if fields.member_ids:
        _set_members(session, team, fields.member_ids, actor)
    return team


def replace_scim_group(
    session: Session, *, team: Team, fields: ScimGroupFields, actor: Actor
) -> Team:
    renamed = fields.display_name.strip() != team.name
    team_actions.rename_team(session, team=team, name=fields.display_name, actor=actor)
    if fields.external_id != team.external_id:
        before = {"external_id": team.external_id}
        team.external_id = fields.external_id
        team.updated_at = utcnow()
        audit.record_change(
            session,
            actor=actor,
            subject=team,
            action="team.external_id_changed",
            target_type="team",
            before=before,
            after={"external_id": fields.external_id},
        )
    if fields.member_ids is not None:
        _set_members(session, team, fields.member_ids, actor)
    if renamed:
        for scim_user in _scim_members(session, team):
            apply_group_roles(session, scim_user=scim_user, actor=actor)
    return team


def delete_scim_group(session: Session, *, team: Team, actor: Actor) -> None:
    members = _scim_members(session, team)
    team_actions.delete_team(session, team=team, actor=actor)
    session.flush()
    _apply_group_roles_of(session, members, actor)


def patch_scim_group_members(
    session: Session, *, team: Team, steps: MemberSteps, actor: Actor
) -> None:
    """A group PATCH made only of member adds and removes: read as the change it makes
    (connectors.scim.member_patch), from the members it names, not the whole group."""
    change = steps.change(_member_values_among(session, team, steps.touched()))
    adding = {_member_uuid(member_id) for member_id in change.added}
    _check_users(session, team, adding)
    leaving = {uuid.UUID(value) for value in change.removed} - adding
    _change_members(session, team, adding - _members_among(session, team, adding), leaving, actor)


def _set_members(session: Session, team: Team, member_ids: Iterable[str], actor: Actor) -> None:
    """Make the team's SCIM-provisioned members exactly these (others are left alone)."""
    wanted = {_member_uuid(member_id) for member_id in member_ids}
    _check_users(session, team, wanted)
    current = set(
        session.scalars(
            select(ScimUser.id)
            .join(TeamMembership, TeamMembership.user_id == ScimUser.user_id)
            .where(TeamMembership.team_id == team.id)
        )
    )
    _change_members(session, team, wanted - current, current - wanted, actor)


def _member_uuid(value: str) -> uuid.UUID:
    """A member names a user by id as members.value's definition says (in any case)."""
    return _uuid(value, "member", invalid=InvalidInput, case_exact=MEMBER_VALUE.case_exact)


def _check_users(session: Session, team: Team, scim_ids: set[uuid.UUID]) -> None:
    if not scim_ids:
        return
    found = set(
        session.scalars(
            select(ScimUser.id).where(
                ScimUser.organisation_id == team.organisation_id, ScimUser.id.in_(scim_ids)
            )
        )
    )
    missing = scim_ids - found
    if missing:
        raise InvalidInput(
            f"members {', '.join(sorted(map(str, missing)))} are not users of this organisation",
            field="members",
        )


def _members_among(session: Session, team: Team, scim_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not scim_ids:
        return set()
    return set(
        session.scalars(
            select(ScimUser.id)
            .join(TeamMembership, TeamMembership.user_id == ScimUser.user_id)
            .where(TeamMembership.team_id == team.id, ScimUser.id.in_(scim_ids))
        )
    )


def _member_values_among(session: Session, team: Team, values: set[str]) -> set[str]:
    """Which of these member values (ids as a group renders them) are members now."""
    found = (named_id(value) for value in values)
    ids = {scim_id for scim_id in found if scim_id is not None}
    return {str(scim_id) for scim_id in _members_among(session, team, ids)}


def _change_members(
    session: Session,
    team: Team,
    joining_ids: set[uuid.UUID],
    leaving_ids: set[uuid.UUID],
    actor: Actor,
) -> None:
    if not leaving_ids and not joining_ids:
        return
    # The people are loaded as objects (with their users) only when they join or leave, so
    # a PATCH of one member of a large group does not load all the others.
    changing = {
        s.id: s
        for s in session.scalars(
            select(ScimUser).where(
                ScimUser.organisation_id == team.organisation_id,
                ScimUser.id.in_([*leaving_ids, *joining_ids]),
            )
        )
    }
    leaving = [changing[scim_id] for scim_id in sorted(leaving_ids)]
    joining = [changing[scim_id] for scim_id in sorted(joining_ids)]
    team.updated_at = utcnow()  # the group's meta.lastModified moves with its members
    # Set-based: a few statements for the whole change, not several per member.
    team_actions.remove_members(session, team=team, users=[s.user for s in leaving], actor=actor)
    team_actions.add_members(
        session, team=team, users=[s.user for s in joining], role=TeamRole.MEMBER, actor=actor
    )
    _apply_group_roles_of(session, [*leaving, *joining], actor)


def _scim_members(session: Session, team: Team) -> list[ScimUser]:
    return list(
        session.scalars(
            select(ScimUser)
            .join(TeamMembership, TeamMembership.user_id == ScimUser.user_id)
            .where(TeamMembership.team_id == team.id)
        )
    )


# --- group -> role mapping -------------------------------------------------------------


def set_group_role(
    session: Session,
    *,
    organisation: Organisation,
    group_name: str,
    role: Role | None,
    actor: Actor,
) -> None:
    """Members of the IdP group `group_name` hold `role` (None removes the mapping)."""
    if role is Role.SUPER_ADMIN:
        raise InvalidInput("SUPER_ADMIN is a platform role", field="role")
    if role is not None:
        # Its key is the team's (a group is mapped by its name): the same rule as team names.
        group_name = team_actions.validate_team_name(group_name, field="group")
    key = name_key(group_name.strip())
    if not key:
        raise InvalidInput("a group name is required", field="group")
    if role is None:
        gone = session.execute(
            delete(ScimGroupRole)
            .where(
                ScimGroupRole.organisation_id == organisation.id,
                ScimGroupRole.group_name_key == key,
            )
            .returning(ScimGroupRole.group_name, ScimGroupRole.role)
        ).first()
        before = {"group": gone.group_name, "role": gone.role.value} if gone else None
    else:
        # Of two admins mapping the group at once, the later changes what the earlier wrote.
        mapping, created = unique_rows.insert_or_find(
            session,
            ScimGroupRole,
            {"organisation_id": organisation.id, "group_name_key": key},
            {"group_name": group_name.strip(), "role": role},
            lock=True,
        )
        before = None if created else {"group": mapping.group_name, "role": mapping.role.value}
        mapping.role = role
    session.flush()
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="scim.group_role.set",
        target_type="organisation",
        target_id=organisation.id,
        before=before,
        after={"group": group_name.strip(), "role": role.value} if role else None,
    )
    team = team_actions.find_team_by_name(session, organisation.id, group_name)
    if team is not None and team.external_source is Source.SCIM:
        _apply_group_roles_of(session, _scim_members(session, team), actor)


def group_roles(session: Session, organisation_id: uuid.UUID) -> list[ScimGroupRole]:
    return list(
        session.scalars(
            select(ScimGroupRole)
            .where(ScimGroupRole.organisation_id == organisation_id)
            .order_by(ScimGroupRole.group_name_key)
        )
    )


def apply_group_roles(
    session: Session, *, scim_user: ScimUser, actor: Actor, gated: bool = True
) -> None:
    """Grant the highest role the user's mapped groups give; take it back when they leave.

    Only a role that a group granted is taken back, and only while it is still the user's
    role (an admin's later change wins). Taking it back passes the mass-change gate unless
    `gated` is False (an admin approving the held drop).
    """
    if not user_actions.takes_mapped_role(scim_user.user) and scim_user.granted_role is None:
        return
    _apply_mapped_role(session, scim_user, _mapped_role(session, scim_user), actor, gated=gated)


def _apply_mapped_role(
    session: Session,
    scim_user: ScimUser,
    mapped: Role | None,
    actor: Actor,
    *,
    gated: bool,
    drops: list[tuple[User, Role]] | None = None,
) -> None:
    """apply_group_roles, the highest role the user's mapped groups give being `mapped`.
    `drops`: a role drop is added to it (the person, the role before) for the caller to
    review with the others' (access_reviews.review_role_drops), instead of reviewed here."""
    user = scim_user.user
    if not user_actions.takes_mapped_role(user) and scim_user.granted_role is None:
        return
    base = _base_role(scim_user)
    assert base is not None
    target = mapped if mapped is not None and mapped.rank > base.rank else base
    if target.rank < user.role.rank:
        destructive = gated and user.status is not UserStatus.REVOKED
        if destructive and _role_drop_held(session, scim_user, target, actor):
            return
    else:
        mass_change.withdraw(session, user=user, kinds={ChangeKind.ROLE_DROP}, actor=actor)
    if target is not user.role:
        before = user.role
        user_actions.edit_user(
            session, user=user, role=target, actor=actor, review_drop=drops is None
        )
        if drops is not None and target.rank < before.rank:
            drops.append((user, before))
    granted = target is not base
    scim_user.granted_role = target if granted else None
    scim_user.role_before_grant = base if granted else None


def _apply_group_roles_of(session: Session, scim_users: list[ScimUser], actor: Actor) -> None:
    """apply_group_roles for each of many SCIM users (a group's members changed), with their
    mapped roles and held role drops read in one statement each: apply_group_roles runs only
    for those whose role or grant would change or who have a held role drop to withdraw;
    for the others it would write nothing."""
    if not scim_users:
        return
    session.flush()
    user_ids = [s.user_id for s in scim_users]
    mapped = _mapped_roles(session, scim_users[0].organisation_id, user_ids)
    held: set[uuid.UUID] = (
        mass_change.holding(session, user_ids, kinds={ChangeKind.ROLE_DROP}, source=actor.source)
        if actor.source in mass_change.GATED_SOURCES
        else set()
    )
    changing = [
        s for s in scim_users if s.user_id in held or not _role_settled(s, mapped.get(s.user_id))
    ]
    if not changing:
        return
    # Locked and read again in bulk (edit_user would lock each one with a statement of its own),
    # then decided on what they are now.
    person_lock.lock_people(session, [s.user_id for s in changing])
    # The drops' reviews after the loop, together: each person still gets their own review
    # of the keys they created, but the many who created none cost no read each.
    drops: list[tuple[User, Role]] = []
    for scim_user in changing:
        role = mapped.get(scim_user.user_id)
        if scim_user.user_id in held or not _role_settled(scim_user, role):
            _apply_mapped_role(session, scim_user, role, actor, gated=True, drops=drops)
    access_reviews.review_role_drops(session, drops=drops, actor=actor)


def _role_settled(scim_user: ScimUser, mapped: Role | None) -> bool:
    """Whether apply_group_roles, the user's mapped role being `mapped`, would change nothing
    (no role to edit, no drop to gate, the grant as recorded), held role drops aside."""
    user = scim_user.user
    if not user_actions.takes_mapped_role(user) and scim_user.granted_role is None:
        return True
    base = _base_role(scim_user)
    if base is None:
        return False
    target = mapped if mapped is not None and mapped.rank > base.rank else base
    if target is not user.role:
        return False
    granted = target is not base
    return scim_user.granted_role is (target if granted else None) and (
        scim_user.role_before_grant is (base if granted else None)
    )


def _base_role(scim_user: ScimUser) -> Role | None:
    """The role the user has apart from the groups' grant: the one before it, or their role
    when nothing is granted or someone else changed it since the grant (that is the base now)."""
    user = scim_user.user
    if scim_user.granted_role is not None and user.role is scim_user.granted_role:
        return scim_user.role_before_grant
    return user.role


def _mapped_roles(
    session: Session, organisation_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Role]:
    """_mapped_role of many people: the highest role each one's mapped SCIM groups give."""
    rows = session.execute(
        select(TeamMembership.user_id, ScimGroupRole.role)
        .join(Team, Team.name_key == ScimGroupRole.group_name_key)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(
            ScimGroupRole.organisation_id == organisation_id,
            Team.organisation_id == organisation_id,
            Team.external_source == Source.SCIM,
            TeamMembership.user_id.in_(user_ids),
        )
    ).all()
    best: dict[uuid.UUID, Role] = {}
    for user_id, role in rows:
        if user_id not in best or role.rank > best[user_id].rank:
            best[user_id] = role
    return best


def _role_drop_held(session: Session, scim_user: ScimUser, target: Role, actor: Actor) -> bool:
    user = scim_user.user
    request = mass_change.GateRequest(
        ChangeKind.ROLE_DROP,
        payload={"scim_user_id": str(scim_user.id), "from": user.role.value, "to": target.value},
        reason=f"SCIM group roles: {user.role.value} -> {target.value}",
    )
    return not mass_change.admit(session, user=user, request=request, actor=actor)


def _mapped_role(session: Session, scim_user: ScimUser) -> Role | None:
    return _mapped_roles(session, scim_user.organisation_id, [scim_user.user_id]).get(
        scim_user.user_id
    )


def _lock_user(session: Session, key: uuid.UUID, organisation_id: uuid.UUID) -> None:
    """The SCIM user's row and its person's, locked in one statement before they are read,
    so a concurrent write of them waits and then reads what this one wrote: the person is
    then read after the lock too, so the write's access-end step need not read them again.
    SQLite needs no lock: every transaction there already holds the database's write lock
    from its start (BEGIN IMMEDIATE, see models.db).

    FOR NO KEY UPDATE: it waits for and holds off every other writer of the rows (an UPDATE,
    a FOR UPDATE) but not a row that merely refers to the person (FOR KEY SHARE): the
    mass-change gate counts a deactivation in a short transaction of its own, whose
    mass_changes row refers to the person, and would otherwise wait for this one."""
    values = {"scim_id": key, "organisation_id": organisation_id}
    driver_writes.run(session, _user_lock(), values)


@functools.cache
def _user_lock() -> Select[uuid.UUID]:
    """_lock_user's statement, built once per process (the user and organisation bound at
    each execution): building it and its cache key cost a write a quarter of a millisecond."""
    return (
        select(ScimUser.id)
        .join(User, User.id == ScimUser.user_id)
        .where(
            ScimUser.id == bindparam("scim_id"),
            ScimUser.organisation_id == bindparam("organisation_id"),
        )
        .with_for_update(key_share=True)
    )


def _uuid(
    value: str, what: str, invalid: type[Exception] = NotFound, *, case_exact: bool = True
) -> uuid.UUID:
    """The id `value` names (connectors.scim.ids: as rendered, in any case for a member)."""
    key = named_id(value, case_exact=case_exact)
    if key is not None:
        return key
    if invalid is NotFound:
        raise NotFound(f"{what} {value} not found")
    raise InvalidInput(f"{what} {value} is not a valid id")


# --- what DELETE leaves behind ---------------------------------------------------------


def set_delete_policy(
    session: Session, *, organisation: Organisation, policy: ScimDeletePolicy, actor: Actor
) -> None:
    settings = organisation.settings
    before = {"scim_delete_policy": settings.scim_delete_policy.value}
    settings.scim_delete_policy = policy
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="organisation.scim_delete_policy_set",
        target_type="organisation",
        target_id=organisation.id,
        before=before,
        after={"scim_delete_policy": policy.value},
    )


ATTRIBUTE_PATH = re.compile(r"^(urn:[A-Za-z0-9.:_-]+:)?[A-Za-z][A-Za-z0-9_-]{0,99}$")


def set_access_end_attribute(
    session: Session, *, organisation: Organisation, attribute: str, actor: Actor
) -> None:
    """Which attribute of the IdP's User carries the date access ends (core or `urn:…:name`)."""
    attribute = attribute.strip()
    if len(attribute) > 255 or not ATTRIBUTE_PATH.match(attribute):
        raise InvalidInput(
            "the attribute must be a name (employeeLeaveDateTime) or a schema URN and a name "
            "(urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeLeaveDateTime)",
            field="attribute",
        )
    settings = organisation.settings
    before = {"scim_access_end_attribute": settings.scim_access_end_attribute}
    settings.scim_access_end_attribute = attribute
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="organisation.scim_access_end_attribute_set",
        target_type="organisation",
        target_id=organisation.id,
        before=before,
        after={"scim_access_end_attribute": attribute},
    )


def purge_deleted_users(
    session: Session, *, organisation: Organisation, actor: Actor
) -> list[uuid.UUID]:
    """Under the hard-delete policy, delete the people the IdP deleted, once every
    revocation review of them is resolved. Never someone another source still links, an
    un-revoked user, or a user whose review has not been opened or finished yet."""
    if organisation.settings.scim_delete_policy is not ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW:
        return []
    deleted_by_scim = exists().where(
        IdentityLink.user_id == User.id,
        IdentityLink.source == Source.SCIM,
        IdentityLink.deleted_at.is_not(None),
    )
    live_link = exists().where(IdentityLink.user_id == User.id, IdentityLink.deleted_at.is_(None))
    reviewed = exists().where(RevocationReview.user_id == User.id)
    open_review = exists().where(
        RevocationReview.user_id == User.id, RevocationReview.status == ReviewStatus.OPEN
    )
    doomed = session.scalars(
        select(User).where(
            User.organisation_id == organisation.id,
            User.status == UserStatus.REVOKED,
            deleted_by_scim,
            ~live_link,
            reviewed,
            ~open_review,
            ~exists().where(ScimUser.user_id == User.id),
        )
    ).all()
    for user in doomed:
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation.id,
            action="user.hard_deleted",
            target_type="user",
            target_id=user.id,
            before=user_snapshot(user),
            after={"policy": ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW.value},
        )
    ids = [user.id for user in doomed]
    if ids:
        # Core delete: the database cascades links, memberships, revocations and reviews,
        # and sets key ownership to NULL; the audit trail keeps the record.
        session.execute(
            delete(User).where(User.id.in_(ids)).execution_options(synchronize_session=False)
        )
        for user in doomed:
            session.expunge(user)
    return ids
