"""Creating the people of a directory plan in bulk: users, their identity links, the audit.

The checks are those of create_user and link_identity (valid email and name, email free in
the organisation, stable id not linked yet), made set-based because a first import can bring
in a hundred thousand people. Rows go in with COPY on PostgreSQL and one executemany per table
on SQLite. The audit trail gets one `user.created` event per batch (target type `user_batch`)
whose `after.users` lists each created user's id, stable id, name, email and role, as the
invitation sweep lists the ids it expired; the identity link (source `ldap`, the connector) is
in `after.identity`. When the teams are known before the people (groups read first, see
worker.directory_create_stream), each batch is written with its people's team memberships,
audited the same way: one `team.member_added` event per team and batch (target type
`membership_batch`, target id the team's) whose `after.members` lists each user's id and role.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connectors.ldap.plan import Create, apply_error
from connectors.ldap.reconcile import TeamIndex
from models.actions.users import status_on_arrival, validate_email, validate_name
from models.actor import Actor
from models.base import utcnow
from models.db import unique_violation
from models.directory.bulk_rows import BATCH, Rows, dashed, fast_ids, table_of
from models.directory.memberships import NewMembers
from models.entities import AuditEvent, DirectoryConnector, IdentityLink, Organisation, User
from models.entities.user import email_key
from models.enums import Role, Source
from models.errors import DomainError, InvalidInput

# A directory grants these through group mappings; SUPER_ADMIN is a platform role.
_ROLES = frozenset({Role.ORG_ADMIN.value, Role.MANAGER.value, Role.USER.value})
_USER = Role.USER.value  # an enum member's value is a descriptor call: once per person


@dataclass
class Prepared:
    """One batch made ready to write: its rows and, when the teams are known, the new
    people's memberships (team key, user id as 32 hex digits and as a UUID's text); the
    creates it was made from, to make it again without people whose email was taken."""

    rows: list[Rows] = field(default_factory=list)
    members: list[tuple[str, str, str]] = field(default_factory=list)
    items: list[Create] = field(default_factory=list)
    dn_keys: list[str] | None = None
    event: uuid.UUID | None = None
    created: int = 0


@dataclass
class _Existing:
    """Emails and LDAP ids the organisation holds now (the plan may be older than the data).

    Read once for the whole import: per-batch lookups made PostgreSQL, whose statistics still
    describe the empty tables mid-transaction, scan the growing tables again and again.
    """

    emails: set[str]
    linked: set[str]

    @classmethod
    def load(cls, session: Session, organisation: Organisation) -> _Existing:
        emails = session.scalars(
            select(User.email_key).where(User.organisation_id == organisation.id)
        )
        linked = session.scalars(
            select(IdentityLink.external_id).where(
                IdentityLink.organisation_id == organisation.id,
                IdentityLink.source == Source.LDAP,
            )
        )
        return cls(set(emails), set(linked))


class PeopleImport:
    """One connector's creates, added batch by batch; `finish` settles roles and the audit.

    Each batch is written with its audit event. Per person only the new user's id is kept,
    by stable id (`user_ids`, some 10 MB for a hundred thousand, the stable ids being shared
    with the plan): the team memberships of people this import created are written with it
    directly (models.directory.memberships). A user taken back before the end (a sync that writes
    while it reads, see worker.directory_create_stream) or given a role only after the insert
    (from groups) is found again in the database, and their batch's event rewritten, so the
    committed trail names exactly the users that exist, as they are.
    """

    def __init__(
        self,
        session: Session,
        *,
        organisation: Organisation,
        connector: DirectoryConnector,
        actor: Actor,
        teams: TeamIndex | None = None,
    ) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.organisation = organisation
        self.connector = connector
        self.actor = actor
        self.status = status_on_arrival(approval_required=organisation.settings.approval_required)
        self.existing = _Existing.load(session, organisation)
        self.created = 0
        self.events: list[uuid.UUID] = []  # the audit event of each batch
        self.removed: set[str] = set()  # users taken back, as their events name them
        # stable id -> id (32 hex digits) of each user this import created and still creates
        self.user_ids: dict[str, str] = {}
        self.errors: list[dict[str, Any]] = []
        # With the teams known up front, memberships are written with their people, and
        # `user_ids` is not kept: only the few creates not written are (`not_written`).
        self.members: NewMembers | None = None
        if teams is not None:
            self.members = NewMembers(
                session,
                organisation=organisation,
                connector=connector,
                actor=actor,
                teams=teams,
                errors=self.errors,
            )
        self.not_written: set[str] = set()
        # The reading thread prepares the next batch while a writer thread writes this
        # one, and makes it again when an email was taken meanwhile.
        self._preparing = threading.RLock()

    def add(self, items: list[Create]) -> None:
        """Create the people of one batch, skipping (and reporting) those that no longer fit."""
        self.write(self.prepare(items))

    def prepare(self, items: list[Create], dn_keys: list[str] | None = None) -> Prepared:
        """The checks and the rows of one batch, ready to write (no database work);
        `dn_keys`, when given, are the items' normalised DNs (the reconciler's)."""
        with self._preparing:
            return self._prepare(items, dn_keys)

    def _prepare(self, items: list[Create], dn_keys: list[str] | None) -> Prepared:
        prepared = Prepared(items=items, dn_keys=dn_keys)
        users: list[tuple[str, ...]] = []
        dated: list[tuple[str, ...]] = []  # people whose directory entry says access ends
        links: list[tuple[str, ...]] = []
        snapshots: list[str] = []  # each created user in the batch's event, as JSON
        ids = iter(fast_ids(2 * len(items)))
        for item, dn_key in zip(items, dn_keys or repeat(""), strict=False):
            row = self._checked(item)
            if row is None:
                self.not_written.add(item.external_id)
                continue
            email, name, key, role = row
            user_id = next(ids)
            if item.access_ends_at:
                dated.append((user_id, name, email, key, role, self._moment(item.access_ends_at)))
            else:
                users.append((user_id, name, email, key, role))
            # what json.dumps({"dn": dn}) gives, without its per-call setup
            attributes = f'{{"dn": {encode_basestring_ascii(item.dn)}}}'
            if item.access_ends_at:
                attributes = json.dumps({"dn": item.dn, "access_ends_at": item.access_ends_at})
            links.append((next(ids), user_id, item.external_id, attributes))
            shown = dashed(user_id)
            if self.members is None:
                self.user_ids[item.external_id] = user_id
            else:
                teams = self.members.of(item.dn, dn_key)
                prepared.members.extend((team, user_id, shown) for team in teams)
            snapshots.append(_snapshot_json(shown, item, name, email, role))
        if not users and not dated:
            return prepared
        prepared.created = len(users) + len(dated)
        self.created += prepared.created
        event_id, batch_id = fast_ids(2)
        prepared.event = uuid.UUID(event_id)
        self.events.append(prepared.event)
        shared = {"organisation_id": self.organisation.id}
        stamped = ("created_at", "updated_at")
        prepared.rows = [
            Rows.of(
                self.dialect,
                table_of(User),
                ("id", "name", "email", "email_key", "role"),
                users,
                {**shared, "status": self.status},
                stamped=stamped,
            ),
            Rows.of(
                self.dialect,
                table_of(User),
                ("id", "name", "email", "email_key", "role", "access_ends_at"),
                dated,
                {**shared, "status": self.status, "access_ends_source": Source.LDAP},
                stamped=stamped,
            ),
            Rows.of(
                self.dialect,
                table_of(IdentityLink),
                ("id", "user_id", "external_id", "attributes"),
                links,
                {**shared, "source": Source.LDAP, "connector_id": self.connector.id},
                stamped=stamped,
            ),
            Rows.of(
                self.dialect,
                table_of(AuditEvent),
                ("id", "target_id", "after"),
                [(event_id, dashed(batch_id), self._event_after_json(snapshots))],
                {
                    "organisation_id": self.organisation.id,
                    "occurred_at": utcnow(),
                    "source": self.actor.source,
                    "actor": str(self.actor),
                    "action": "user.created",
                    "target_type": "user_batch",
                    "before": None,
                },
            ),
        ]
        return prepared

    def _moment(self, ends: str) -> str:
        """The directory's end date as this database stores it (the text of a row)."""
        moment = datetime.fromisoformat(ends)
        column = table_of(User).c.access_ends_at.type.dialect_impl(self.dialect)
        process = column.bind_processor(self.dialect)
        return str(process(moment)) if process is not None else moment.isoformat()

    def write(self, prepared: Prepared) -> None:
        """Write a batch, whole. On PostgreSQL the emails taken are those of when the import
        began: a person created since (SCIM, an admin) with an email of the batch is
        refused as existing, as the import would have had it after that create, and the
        batch written without them (their email's key refuses the first attempt)."""
        if self.dialect.name != "postgresql":
            self._write(prepared)
            return
        while True:
            try:
                with self.session.begin_nested():
                    self._write(prepared)
                return
            except Exception as exc:
                taken = self._taken_since(prepared) if unique_violation(exc) else set()
                if not taken:
                    raise
            prepared = self._prepared_without(prepared, taken)

    def _write(self, prepared: Prepared) -> None:
        for rows in prepared.rows:
            if rows.payload:  # a batch may have no dated people, or only dated ones
                rows.write(self.session)
        if prepared.members:
            assert self.members is not None
            self.members.write(prepared.members)

    def _taken_since(self, prepared: Prepared) -> set[str]:
        """The email keys of the batch that another transaction has committed since."""
        keys = [email_key(item.email) for item in prepared.items]
        return (
            set(
                self.session.scalars(
                    select(User.email_key).where(
                        User.organisation_id == self.organisation.id, User.email_key.in_(keys)
                    )
                )
            )
            - self.existing.emails
        )

    def _prepared_without(self, prepared: Prepared, taken: set[str]) -> Prepared:
        """The batch made again, its people whose email was taken refused as existing."""
        with self._preparing:
            self.existing.emails |= taken
            self.created -= prepared.created
            if prepared.event is not None:
                self.events.remove(prepared.event)
            again = {item.external_id for item in prepared.items}
            for external_id in again:
                self.user_ids.pop(external_id, None)
            self.errors[:] = [e for e in self.errors if e["external_id"] not in again]
            return self._prepare(prepared.items, prepared.dn_keys)

    @property
    def members_added(self) -> int:
        """Memberships written with the people (none unless the teams were known)."""
        return self.members.added if self.members is not None else 0

    def joined(self, creates: Iterable[Create]) -> set[str]:
        """Stable ids of the plan's creates whose memberships were written with them."""
        if self.members is None:
            return set()
        return {item.external_id for item in creates if item.external_id not in self.not_written}

    def _event_after_json(self, snapshots: list[str]) -> str:
        """json.dumps(self._event_after(...)) of the users' snapshots given as JSON."""
        after = {**self._event_after([]), "count": len(snapshots)}
        head = json.dumps(after)[: -len("[]}")]
        return f"{head}[{', '.join(snapshots)}]}}"

    def _event_after(self, snapshots: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "count": len(snapshots),
            "status": self.status.value,
            "identity": {"source": Source.LDAP.value, "connector_id": str(self.connector.id)},
            "users": snapshots,
        }

    def _checked(self, item: Create) -> tuple[str, str, str, str] | None:
        """Email, name, email key and role of a person to create, or None (an error noted)."""
        if item.external_id in self.existing.linked:
            return None
        key = email_key(item.email)
        if key in self.existing.emails:
            self._error(item, f"{item.email} exists already")
            return None
        role = item.role or _USER
        try:
            email = validate_email(item.email)
            name = validate_name(item.name)
            if role not in _ROLES:
                raise InvalidInput(f"{role!r} is not an organisation role", field="role")
        except DomainError as exc:
            self._error(item, exc.message)
            return None
        # Not added to `existing`: a plan never creates one email or stable id twice (the
        # reconciler reports both entries instead), and the unique constraints would refuse
        # it anyway. Holding 100,000 more keys here cost 15 MB.
        return email, name, key, role

    def _error(self, item: Create, message: str) -> None:
        self.errors.append(apply_error(item, message))

    def withdraw(self, external_ids: list[str]) -> None:
        """Undo the creation of people the plan no longer creates (a later duplicate email).

        Only a sync that writes while it still reads needs this; the transaction has not
        committed, so these users never existed for anyone else.
        """
        taken_back = set(external_ids) - self.existing.linked
        for external_id in taken_back:
            self.user_ids.pop(external_id, None)
        self.errors[:] = [e for e in self.errors if e["external_id"] not in taken_back]
        user_ids = list(self._created_users(taken_back))
        if not user_ids:
            return
        if self.members is not None:
            self.members.withdraw(user_ids)
        # The identity links would also go by ON DELETE CASCADE; said here for SQLite.
        self.session.execute(delete(IdentityLink).where(IdentityLink.user_id.in_(user_ids)))
        self.session.execute(delete(User).where(User.id.in_(user_ids)))
        self.created -= len(user_ids)
        self.removed.update(str(user_id) for user_id in user_ids)

    def _created_users(self, external_ids: set[str]) -> dict[uuid.UUID, str]:
        """The users this import created for these stable ids: id -> stable id."""
        found: dict[uuid.UUID, str] = {}
        ordered = sorted(external_ids)
        for start in range(0, len(ordered), BATCH):
            rows = self.session.execute(
                select(IdentityLink.user_id, IdentityLink.external_id).where(
                    IdentityLink.organisation_id == self.organisation.id,
                    IdentityLink.source == Source.LDAP,
                    IdentityLink.connector_id == self.connector.id,
                    IdentityLink.external_id.in_(ordered[start : start + BATCH]),
                )
            )
            found.update({row.user_id: row.external_id for row in rows})
        return found

    def finish(self, creates: list[Create]) -> int:
        """Roles the plan gave after the insert (from groups), stale events; the count."""
        if self.members is not None:
            self.members.finish()
        roles = self._apply_later_roles(creates)
        if roles or self.removed:
            self._rewrite_events(roles)
        return self.created

    def _apply_later_roles(self, creates: list[Create]) -> dict[str, str]:
        """Set the roles that differ from the inserted ones; user id -> role."""
        wanted = {
            item.external_id: item.role
            for item in creates
            if item.role in _ROLES and item.role != Role.USER.value
        }
        wanted = {ext: role for ext, role in wanted.items() if ext not in self.existing.linked}
        changed: dict[str, str] = {}
        by_role: dict[str, list[uuid.UUID]] = {}
        for user_id, external_id in self._created_users(set(wanted)).items():
            by_role.setdefault(wanted[external_id], []).append(user_id)
        for role, user_ids in by_role.items():
            for start in range(0, len(user_ids), BATCH):
                updated = self.session.execute(
                    update(User)
                    .where(User.id.in_(user_ids[start : start + BATCH]), User.role != Role(role))
                    .values(role=Role(role))
                    .returning(User.id)
                )
                changed.update({str(user_id): role for user_id in updated.scalars()})
        return changed

    def _rewrite_events(self, roles: dict[str, str]) -> None:
        for event_id in self.events:
            event = self.session.get_one(AuditEvent, event_id)
            assert event.after is not None
            listed = event.after["users"]
            users = [
                {**user, "role": roles.get(user["id"], user["role"])}
                for user in listed
                if user["id"] not in self.removed
            ]
            if not users:
                self.session.delete(event)
            elif users != listed:
                event.after = self._event_after(users)
            self.session.flush()
            if event in self.session:
                self.session.expunge(event)  # a few hundred kilobytes each


def _snapshot_json(user_id: str, item: Create, name: str, email: str, role: str) -> str:
    """A created user as the batch's event lists them, formatted as json.dumps gives the
    dict (id, external_id, name, email, role, access_ends_at if any): 1.8 against 3.4 us a
    person with the dict and json.dumps."""
    text = (
        f'{{"id": "{user_id}", "external_id": {encode_basestring_ascii(item.external_id)}, '
        f'"name": {encode_basestring_ascii(name)}, "email": {encode_basestring_ascii(email)}, '
        f'"role": {encode_basestring_ascii(role)}'
    )
    if item.access_ends_at:
        text += f', "access_ends_at": {encode_basestring_ascii(item.access_ends_at)}'
    return text + "}"


class ImportParts:
    """One import written by several transactions side by side (see
    worker.directory_create_stream), each batch whole in one of them: what the apply step
    asks of a PeopleImport, over all of them."""

    def __init__(self, parts: list[PeopleImport]) -> None:
        self.parts = parts

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [error for part in self.parts for error in part.errors]

    @property
    def user_ids(self) -> dict[str, str]:
        return {key: value for part in self.parts for key, value in part.user_ids.items()}

    @property
    def members_added(self) -> int:
        return sum(part.members_added for part in self.parts)

    def joined(self, creates: Iterable[Create]) -> set[str]:
        if any(part.members is None for part in self.parts):
            return set()
        skipped = set().union(*(part.not_written for part in self.parts))
        return {item.external_id for item in creates if item.external_id not in skipped}

    def finish(self, creates: list[Create]) -> int:
        """Each part settles the roles and events of the people it wrote."""
        return sum(part.finish(creates) for part in self.parts)
