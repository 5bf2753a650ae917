"""Creating the people of a directory plan in bulk: users, their identity links, the audit.

The checks are those of create_user and link_identity (valid email and name, email free in
the organisation, stable id not linked yet), made set-based because a first import can bring
in a hundred thousand people. Rows go in with COPY on PostgreSQL and one executemany per table
on SQLite. The audit trail gets one `user.created` event per batch (target type `user_batch`)
whose `after.users` lists each created user's id, stable id, name, email and role, as the
invitation sweep lists the ids it expired; the identity link (source `ldap`, the connector) is
in `after.identity`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from connectors.ldap.plan import Create
from models.actions.users import validate_email, validate_name
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, DirectoryConnector, IdentityLink, Organisation, User
from models.entities.user import email_key
from models.enums import Role, Source, UserStatus
from models.errors import DomainError, InvalidInput

BATCH = 2000
# A directory grants these through group mappings; SUPER_ADMIN is a platform role.
_ROLES = frozenset({Role.ORG_ADMIN.value, Role.MANAGER.value, Role.USER.value})


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
    ) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.organisation = organisation
        self.connector = connector
        self.actor = actor
        pending = organisation.settings.approval_required
        self.status = UserStatus.PENDING if pending else UserStatus.ACTIVE
        self.existing = _Existing.load(session, organisation)
        self.now = utcnow()
        self.created = 0
        self.events: list[uuid.UUID] = []  # the audit event of each batch
        self.removed: set[str] = set()  # users taken back, as their events name them
        # stable id -> id (32 hex digits) of each user this import created and still creates
        self.user_ids: dict[str, str] = {}
        self.errors: list[dict[str, Any]] = []

    def add(self, items: list[Create]) -> None:
        """Create the people of one batch, skipping (and reporting) those that no longer fit."""
        self.write(self.prepare(items))

    def prepare(self, items: list[Create]) -> list[Rows]:
        """The checks and the rows of one batch, ready to write (no database work)."""
        users: list[tuple[str, ...]] = []
        dated: list[tuple[str, ...]] = []  # people whose directory entry says access ends
        links: list[tuple[str, ...]] = []
        snapshots: list[dict[str, str]] = []
        ids = iter(fast_ids(2 * len(items)))
        for item in items:
            row = self._checked(item)
            if row is None:
                continue
            email, name, key, role = row
            user_id = next(ids)
            if item.access_ends_at:
                dated.append((user_id, name, email, key, role, self._moment(item)))
            else:
                users.append((user_id, name, email, key, role))
            # what json.dumps({"dn": dn}) gives, without its per-call setup
            attributes = f'{{"dn": {encode_basestring_ascii(item.dn)}}}'
            if item.access_ends_at:
                attributes = json.dumps({"dn": item.dn, "access_ends_at": item.access_ends_at})
            links.append((next(ids), user_id, item.external_id, attributes))
            self.user_ids[item.external_id] = user_id
            snapshot = {
                "id": dashed(user_id),
                "external_id": item.external_id,
                "name": name,
                "email": email,
                "role": role,
            }
            if item.access_ends_at:
                snapshot["access_ends_at"] = item.access_ends_at
            snapshots.append(snapshot)
        if not users and not dated:
            return []
        self.created += len(users)
        event_id, batch_id = fast_ids(2)
        self.events.append(uuid.UUID(event_id))
        shared = {"organisation_id": self.organisation.id, "created_at": self.now}
        shared["updated_at"] = self.now
        return [
            Rows.of(
                self.dialect,
                table_of(User),
                ("id", "name", "email", "email_key", "role"),
                users,
                {**shared, "status": self.status},
            ),
            Rows.of(
                self.dialect,
                table_of(User),
                ("id", "name", "email", "email_key", "role", "access_ends_at"),
                dated,
                {**shared, "status": self.status, "access_ends_source": Source.LDAP},
            ),
            Rows.of(
                self.dialect,
                table_of(IdentityLink),
                ("id", "user_id", "external_id", "attributes"),
                links,
                {**shared, "source": Source.LDAP, "connector_id": self.connector.id},
            ),
            Rows.of(
                self.dialect,
                table_of(AuditEvent),
                ("id", "target_id", "after"),
                [(event_id, dashed(batch_id), json.dumps(self._event_after(snapshots)))],
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

    def _moment(self, item: Create) -> str:
        """The directory's end date as this database stores it (the text of a row)."""
        moment = datetime.fromisoformat(item.access_ends_at)
        column = table_of(User).c.access_ends_at.type.dialect_impl(self.dialect)
        process = column.bind_processor(self.dialect)
        return str(process(moment)) if process is not None else moment.isoformat()

    def write(self, prepared: list[Rows]) -> None:
        for rows in prepared:
            if rows.payload:  # a batch may have no dated people, or only dated ones
                rows.write(self.session)

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
        role = item.role or Role.USER.value
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
        self.errors.append({"external_id": item.external_id, "message": message})

    def withdraw(self, external_ids: list[str]) -> None:
        """Undo the creation of people the plan no longer creates (a later duplicate email).

        Only a sync that writes while it still reads needs this; the transaction has not
        committed, so these users never existed for anyone else.
        """
        taken_back = set(external_ids) - self.existing.linked
        for external_id in taken_back:
            self.user_ids.pop(external_id, None)
        self.errors = [e for e in self.errors if e["external_id"] not in taken_back]
        user_ids = list(self._created_users(taken_back))
        if not user_ids:
            return
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


def table_of(entity: type[Any]) -> Table:
    return cast(Table, entity.__table__)


def fast_ids(count: int) -> list[str]:
    """Time-ordered ids in the layout of models.base.new_id, as 32 hex digits, in bulk."""
    millis = time.time_ns() // 1_000_000
    head = (millis << 80) | (0x7 << 76) | (0b10 << 62)
    bits = random.getrandbits
    return [f"{head | (bits(12) << 64) | bits(62):032x}" for _ in range(count)]


def dashed(hex_id: str) -> str:
    """The usual text form of a UUID given as 32 hex digits."""
    h = hex_id
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- writing rows ---------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows of one table in the form its database takes them fastest: COPY text for
    PostgreSQL, executemany parameters for SQLite. SQLAlchemy's executemany would convert
    each row's parameters one by one; here the rows' own values are already text as both
    databases store them (UUIDs as 32 hex digits, JSON serialised), and the values every row
    shares go through their column types once."""

    statement: str
    payload: str | list[tuple[Any, ...]]

    @classmethod
    def of(
        cls,
        dialect: Dialect,
        table: Table,
        columns: tuple[str, ...],
        rows: list[tuple[str, ...]],
        shared: dict[str, Any],
    ) -> Rows:
        names = [*columns, *shared]
        if dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in names)
            tail = "".join(f"\t{_copy_value(value)}" for value in shared.values()) + "\n"
            data = "".join([_copy_line(row) + tail for row in rows])
            return cls(f'COPY "{table.name}" ({quoted}) FROM STDIN', data)
        common: list[Any] = []
        for name, value in shared.items():
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            common.append(process(value) if process is not None and value is not None else value)
        # The parameters in the order the compiled statement wants them.
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        reorder = itemgetter(*[names.index(name) for name in compiled.positiontup or []])
        tail_values = tuple(common)
        return cls(compiled.string, [reorder(row + tail_values) for row in rows])

    def write(self, session: Session) -> None:
        connection = session.connection()
        if isinstance(self.payload, str):
            driver = connection.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor, cursor.copy(self.statement) as copy:
                copy.write(self.payload)
        else:
            connection.exec_driver_sql(self.statement, self.payload)


# COPY's text format: a backslash starts an escape, and tab, newline and carriage return
# separate values and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_line(row: tuple[str, ...]) -> str:
    """A row's values joined by tabs; most rows need no escaping, which one scan tells."""
    joined = "".join(row)
    if "\\" in joined or not joined.isprintable():
        return "\t".join([_copy_text(value) for value in row])
    return "\t".join(row)


def _copy_value(value: Any) -> str:
    """A shared value in COPY's text format (once per batch, so clarity beats speed)."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _copy_text(json.dumps(value))
    return _copy_text(str(value))
