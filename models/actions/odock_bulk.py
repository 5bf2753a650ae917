"""Loading many keys, budgets and quotas at once: the import and the reconcile.

Rows are staged a chunk at a time in a temporary table (PostgreSQL: COPY; SQLite: one
executemany) and each chunk is applied with a few set-based statements: people named by email
resolved, rows naming someone outside the organisation, or another organisation's key
(models.odock_references, asked once per chunk), rejected, rows older than a tombstone
dropped, then one INSERT .. SELECT .. ON CONFLICT (id) DO UPDATE .. WHERE the staged version is
newer. Memory stays one chunk whatever the size of the load. The reconcile also keeps every id
it saw in a second temporary table, and once the listing is complete marks unseen, in one
statement, what the organisation holds that the listing no longer contains, and forgets what
enough consecutive complete listings have lacked.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    and_,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from models.actions import leaver_checks
from models.actions.odock_objects import (
    ENTITIES,
    KIND_BUDGET,
    KIND_KEY,
    KIND_QUOTA,
    TARGET_TYPES,
    BudgetIn,
    KeyIn,
    QuotaIn,
    no_key_here,
)
from models.actor import Actor
from models.base import UTCDateTime, new_id, utcnow
from models.db import conflict_insert
from models.entities import AuditEvent, OdockTombstone, Team, User
from models.entities.user import email_key
from models.enums import KeyType, OwnerType
from models.key_changes import keep_pending_decision_sql
from models.odock_references import keys_of_other_organisations

CHUNK_ROWS = 25_000
SAMPLE = 10

_METADATA = MetaData()


def _stage(kind: str, *columns: Column[Any]) -> Table:
    return Table(
        f"odock_stage_{kind}",
        _METADATA,
        Column("id", Uuid(), nullable=False),  # no index to keep up: joined by the target's
        *columns,
        Column("version", BigInteger(), nullable=False),
        prefixes=["TEMPORARY"],
    )


STAGES = {
    KIND_KEY: _stage(
        KIND_KEY,
        Column("key_type", String(32)),
        Column("name", String(200)),
        Column("masked_value", String(64)),
        Column("owner_user_id", Uuid()),
        Column("owner_team_id", Uuid()),
        Column("created_by_user_id", Uuid()),
        Column("created_at", UTCDateTime()),
        Column("expires_at", UTCDateTime()),
        Column("revoked", Boolean()),
        Column("revoked_at", UTCDateTime()),
        Column("revealed_by_user_id", Uuid()),
        Column("revealed_at", UTCDateTime()),
    ),
    KIND_BUDGET: _stage(
        KIND_BUDGET,
        Column("owner_type", String(32)),
        Column("owner_id", Uuid()),
        Column("name", String(200)),
        Column("amount", Numeric(14, 4)),
        Column("currency", String(3)),
        Column("window", String(16)),
    ),
    KIND_QUOTA: _stage(
        KIND_QUOTA,
        Column("owner_type", String(32)),
        Column("owner_id", Uuid()),
        Column("name", String(200)),
        Column("metric", String(16)),
        Column("limit", BigInteger()),
        Column("window", String(16)),
    ),
}


def _copy_type(column: Column[Any]) -> str:
    for kind, name in ((Uuid, "uuid"), (UTCDateTime, "timestamptz"), (Boolean, "bool")):
        if isinstance(column.type, kind):
            return name
    if isinstance(column.type, BigInteger):
        return "int8"
    return "numeric" if isinstance(column.type, Numeric) else "text"


COPY_TYPES = {kind: [_copy_type(c) for c in stage.columns] for kind, stage in STAGES.items()}
SEEN = {
    kind: Table(
        f"odock_seen_{kind}",
        _METADATA,
        Column("id", Uuid(), nullable=False),
        prefixes=["TEMPORARY"],
    )
    for kind in STAGES
}
KEY_TYPE = list(STAGES[KIND_KEY].columns.keys()).index("key_type")
KEY_TEAM = list(STAGES[KIND_KEY].columns.keys()).index("owner_team_id")
# A budget's and a quota's staged rows start alike: (id, owner_type, owner_id, name, ...).
OWNER_TYPE = list(STAGES[KIND_BUDGET].columns.keys()).index("owner_type")
OWNER = list(STAGES[KIND_BUDGET].columns.keys()).index("owner_id")
# The staged columns that name a person (by id, or by email until resolved) or a team.
PEOPLE = {
    KIND_KEY: ("owner_user_id", "created_by_user_id", "revealed_by_user_id"),
    KIND_BUDGET: ("owner_id",),
    KIND_QUOTA: ("owner_id",),
}
TEAMS = {KIND_KEY: ("owner_team_id",), KIND_BUDGET: ("owner_id",), KIND_QUOTA: ("owner_id",)}


# --- turning the contract's objects into staged rows -------------------------------------------


class Unusable(ValueError):
    """A listed or imported object that cannot be staged; the load reports it and goes on."""


def key_row(key_id: uuid.UUID, key: KeyIn) -> tuple[Any, ...]:
    """The staged row; a person named by email carries the email (a str) in the id's place
    until the loader resolves it."""
    return (
        key_id,
        key.type.value,
        key.name,
        key.masked_value,
        _person(key.owner_user_id, key.owner_email, "owner"),
        key.owner_team_id,
        _person(key.created_by_user_id, key.created_by_email, "created_by"),
        key.created_at,
        key.expires_at,
        key.revoked,
        key.revoked_at if key.revoked else None,
        _person(key.revealed_by_user_id, key.revealed_by_email, "revealed_by"),
        key.revealed_at,
        key.version,
    )


def owned_row(
    organisation_id: uuid.UUID, object_id: uuid.UUID, owned: BudgetIn | QuotaIn
) -> tuple[Any, ...]:
    owner_id = _person(owned.owner_id, owned.owner_email, "owner")
    if owned.owner_email is not None and owned.owner_type is not OwnerType.USER:
        raise Unusable("owner_email names a USER owner only")
    if owned.owner_type is OwnerType.ORG:
        owner_id = owner_id or organisation_id
    head = (object_id, owned.owner_type.value, owner_id, owned.name)
    if isinstance(owned, BudgetIn):
        return (*head, owned.amount, owned.currency, owned.window, owned.version)
    return (*head, owned.metric, owned.limit, owned.window, owned.version)


def _person(given_id: uuid.UUID | None, email: str | None, name: str) -> uuid.UUID | str | None:
    if given_id is not None and email is not None:
        raise Unusable(f"give {name}'s id or email, not both")
    return email_key(email) if email is not None else given_id


# --- the counts a load reports --------------------------------------------------------------


@dataclass
class KindCounts:
    """What a load did to one kind of object; ids are samples, at most SAMPLE of each."""

    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    deleted: int = 0
    unseen: int = 0  # lacked by this complete listing, kept (not yet forgotten)
    seen_again: int = 0  # lacked by an earlier complete listing, in this one
    ids: dict[str, list[str]] = field(default_factory=dict)
    # Both the reading thread (rows it cannot use) and the database thread (rows the chunk
    # refuses) reject: `rejected` and its samples change only under this lock (a bare
    # `rejected += n` from two threads can lose a count).
    _rejecting: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def sample(self, what: str, ids: Iterable[Any]) -> None:
        kept = self.ids.setdefault(what, [])
        for object_id in ids:
            if len(kept) >= SAMPLE:
                return
            kept.append(str(object_id))

    def reject(self, reasons: list[str]) -> None:
        """Count these rejections (`id: reason` each) and keep samples; from either thread."""
        if not reasons:
            return
        with self._rejecting:
            self.rejected += len(reasons)
            self.sample("rejected", reasons)

    @property
    def drift(self) -> int:
        return self.created + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "deleted": self.deleted,
            "unseen": self.unseen,
            "seen_again": self.seen_again,
            "ids": self.ids,
        }


# --- the loader ----------------------------------------------------------------------------------


class Directory:
    """The organisation's people (by id and by email) and teams, read once per load: the
    people and teams rows name are checked here, not per row in SQL."""

    def __init__(self, connection: Connection, organisation_id: uuid.UUID) -> None:
        self.organisation_id = organisation_id
        by_email = connection.execute(
            select(User.email_key, User.id).where(User.organisation_id == organisation_id)
        ).all()
        self.user_by_email: dict[str, uuid.UUID] = {email: user_id for email, user_id in by_email}
        self.user_ids = set(self.user_by_email.values())
        self.team_ids = set(
            connection.scalars(select(Team.id).where(Team.organisation_id == organisation_id))
        )

    def person(self, named: uuid.UUID | str | None) -> uuid.UUID | None:
        """The person's id; raises Unusable when they are not in the organisation."""
        if named is None:
            return None
        if isinstance(named, str):
            found = self.user_by_email.get(named)
            if found is None:
                raise Unusable(f"no user with email {named} in this organisation")
            return found
        if named not in self.user_ids:
            raise Unusable(f"no user {named} in this organisation")
        return named

    def team(self, team_id: uuid.UUID | None) -> uuid.UUID | None:
        if team_id is not None and team_id not in self.team_ids:
            raise Unusable(f"no team {team_id} in this organisation")
        return team_id


def database_thread_for(_connection: Connection) -> ThreadPoolExecutor:
    """The one thread that uses a loading connection while the caller reads ahead."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="odock-load")


class Loader:
    """Loads one kind of object for one organisation on one connection, a chunk at a time;
    each chunk is committed with an audit event of its own. While the database applies a
    chunk, the caller's thread goes on reading and checking the next one."""

    def __init__(
        self,
        connection: Connection,
        *,
        organisation_id: uuid.UUID,
        kind: str,
        actor: Actor,
        keep_seen: bool = False,
        chunk_rows: int = CHUNK_ROWS,
        database_thread: ThreadPoolExecutor | None = None,
    ) -> None:
        self.connection, self.organisation_id, self.kind = connection, organisation_id, kind
        self.actor, self.keep_seen, self.chunk_rows = actor, keep_seen, chunk_rows
        self.stage, self.seen = STAGES[kind], SEEN[kind]
        self.target: Table = ENTITIES[kind].__table__  # type: ignore[assignment]
        self.counts = KindCounts()
        self.rows: list[tuple[Any, ...]] = []
        self.seen_only: list[uuid.UUID] = []
        self.postgres = connection.dialect.name == "postgresql"
        self.directory: Directory | None = None
        self.columns = list(self.stage.columns.keys())
        self.people = [self.columns.index(name) for name in PEOPLE[kind]]
        self.applying: Future[None] | None = None
        # One thread per connection: loaders sharing a connection share their thread.
        self.owns_thread = database_thread is None
        self.executor = database_thread or database_thread_for(connection)

    def __enter__(self) -> Loader:
        tables = [self.stage, self.seen] if self.keep_seen else [self.stage]
        for table in tables:
            self.connection.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
            table.create(self.connection)
        self.directory = Directory(self.connection, self.organisation_id)
        self.connection.commit()
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.wait()
        finally:
            if self.owns_thread:
                self.executor.shutdown()
            if self.connection.in_transaction():
                self.connection.rollback()
            for table in (self.stage, self.seen):
                self.connection.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
            self.connection.commit()

    # -- rows in

    def add(self, row: tuple[Any, ...]) -> None:
        """Stage a row, once the people and teams it names are known to be here."""
        try:
            row = self._checked(row)
        except Unusable as exc:
            self.reject(row[0], str(exc))
            return
        self.rows.append(row)
        if len(self.rows) >= self.chunk_rows:
            self.flush(wait=False)

    def _checked(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self.directory is not None
        if self.kind == KIND_KEY:
            return self._checked_key(row, self.directory)
        values = list(row)
        owner_type, owner = values[OWNER_TYPE], values[OWNER]
        if owner_type == OwnerType.USER.value:
            values[OWNER] = self.directory.person(owner)
        elif owner_type == OwnerType.TEAM.value:
            self.directory.team(owner)
        elif owner_type == OwnerType.ORG.value and owner != self.organisation_id:
            raise Unusable("an ORG owner is this organisation")
        if values[OWNER] is None:
            raise Unusable("owner_id is required")
        return tuple(values)

    def _checked_key(self, row: tuple[Any, ...], directory: Directory) -> tuple[Any, ...]:
        values = list(row)
        for position in self.people:
            values[position] = directory.person(values[position])
        team = directory.team(values[KEY_TEAM])
        if values[KEY_TYPE] == KeyType.USER.value and values[self.people[0]] is None:
            raise Unusable("a USER key names its owner")
        if values[KEY_TYPE] == KeyType.TEAM.value and team is None:
            raise Unusable("a TEAM key names its team")
        return tuple(values)

    def reject(self, object_id: Any, reason: str) -> None:
        """An object that cannot be loaded; its id still counts as listed (it exists)."""
        self.counts.reject([f"{object_id}: {reason}"[:200]])
        if self.keep_seen and isinstance(object_id, uuid.UUID):
            self.seen_only.append(object_id)

    def flush(self, *, wait: bool = True) -> None:
        """Hand the chunk to the database thread (after the previous one is done)."""
        rows, self.rows = _newest_per_id(self.rows), []
        seen_only, self.seen_only = self.seen_only, []
        self.wait()
        if rows or seen_only:
            self.applying = self.executor.submit(self._apply, rows, seen_only)
        if wait:
            self.wait()

    def wait(self) -> None:
        applying, self.applying = self.applying, None
        if applying is not None:
            applying.result()

    # -- one chunk, on the database thread

    def _apply(self, rows: list[tuple[Any, ...]], seen_only: list[uuid.UUID]) -> None:
        rows, refused = self._without_foreign_key_owners(rows)
        if self.postgres:
            self.connection.exec_driver_sql(f"TRUNCATE {self.stage.name}")
        else:
            self.connection.execute(self.stage.delete())
        self._copy(rows)
        if self.keep_seen:
            self._remember_seen([*seen_only, *refused])
        self.counts.seen += len(rows)
        self._drop_held()
        self._drop_buried()
        created, updated = self._upsert()
        if self.kind == KIND_KEY and (created or updated):
            self._arm_leaver_check()
        if created or updated:
            self._audit(
                f"odock.{self.kind}s.loaded",
                {
                    "created": len(created),
                    "updated": len(updated),
                    "created_ids": [str(i) for i in created[:SAMPLE]],
                    "updated_ids": [str(i) for i in updated[:SAMPLE]],
                },
            )
        self.connection.commit()

    def _without_foreign_key_owners(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[uuid.UUID]]:
        """The rows whose APIKEY owner the organisation may name, and the ids of those it may
        not (another organisation's key: the push's rule, asked once for the whole chunk)."""
        if self.kind == KIND_KEY:
            return rows, []
        apikey = OwnerType.APIKEY.value
        named = {row[OWNER] for row in rows if row[OWNER_TYPE] == apikey}
        foreign = keys_of_other_organisations(self.connection, self.organisation_id, named)
        if not foreign:
            return rows, []
        refused = [row for row in rows if row[OWNER_TYPE] == apikey and row[OWNER] in foreign]
        self.counts.reject([f"{row[0]}: {no_key_here(row[OWNER])}" for row in refused])
        kept = [row for row in rows if row[OWNER_TYPE] != apikey or row[OWNER] not in foreign]
        return kept, [row[0] for row in refused]

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            names = ", ".join(f'"{name}"' for name in self.columns)
            raw = self.connection.connection.driver_connection
            statement = f"COPY {self.stage.name} ({names}) FROM STDIN (FORMAT BINARY)"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                copy.set_types(COPY_TYPES[self.kind])  # binary: ~4x faster than text here
                for row in rows:
                    copy.write_row(row)
            return
        self.connection.execute(
            self.stage.insert(), [dict(zip(self.columns, row, strict=True)) for row in rows]
        )

    def _remember_seen(self, seen_only: list[uuid.UUID]) -> None:
        listed = select(self.stage.c.id)
        self.connection.execute(insert(self.seen).from_select(["id"], listed))
        if seen_only:
            self.connection.execute(insert(self.seen), [{"id": i} for i in seen_only])

    def _drop_held(self) -> None:
        """Rows held here at the same version or newer (unchanged) or by another organisation
        (rejected) leave the stage, so that the upsert touches only what it changes."""
        stage, target, org = self.stage, self.target, self.organisation_id
        if not self.postgres:
            self._drop_held_one_test_at_a_time()
            return
        # A probe of the target's primary key per staged row: the planner would rather hash
        # the whole target, which for a million keys costs a full scan per chunk.
        for join in ("enable_hashjoin", "enable_mergejoin"):
            self.connection.exec_driver_sql(f"SET LOCAL {join} = off")
        left = self.connection.execute(
            stage.delete()
            .where(
                target.c.id == stage.c.id,
                or_(target.c.organisation_id != org, target.c.version >= stage.c.version),
            )
            .returning(stage.c.id, target.c.organisation_id != org)
        ).all()
        for join in ("enable_hashjoin", "enable_mergejoin"):
            self.connection.exec_driver_sql(f"SET LOCAL {join} = on")
        foreign = [row[0] for row in left if row[1]]
        self.counts.unchanged += len(left) - len(foreign)
        self._count_foreign(foreign)

    def _drop_held_one_test_at_a_time(self) -> None:
        """SQLite has no DELETE .. USING."""
        stage, target, org = self.stage, self.target, self.organisation_id
        foreign = exists().where(target.c.id == stage.c.id, target.c.organisation_id != org)
        gone = self.connection.scalars(stage.delete().where(foreign).returning(stage.c.id)).all()
        self._count_foreign(list(gone))
        as_new = exists().where(target.c.id == stage.c.id, target.c.version >= stage.c.version)
        self.counts.unchanged += self.connection.execute(stage.delete().where(as_new)).rowcount

    def _count_foreign(self, foreign: list[Any]) -> None:
        self.counts.reject([f"{i}: held by another organisation" for i in foreign])

    def _drop_buried(self) -> None:
        """Rows not newer than the tombstone of their id: a newer delete already won. Asked
        for each chunk: a delete may commit while the load runs (it was asked once, at the
        start, and a key deleted meanwhile came back at an older version)."""
        stage = self.stage
        buried = exists().where(
            OdockTombstone.organisation_id == self.organisation_id,
            OdockTombstone.kind == self.kind,
            OdockTombstone.object_id == stage.c.id,
            OdockTombstone.version >= stage.c.version,
        )
        self.counts.unchanged += self.connection.execute(stage.delete().where(buried)).rowcount

    def _upsert(self) -> tuple[list[Any], list[Any]]:
        """One INSERT .. SELECT .. ON CONFLICT DO UPDATE of the staged rows that are newer;
        returns the ids created and updated."""
        stage, target = self.stage, self.target
        staged = self.connection.scalar(select(func.count()).select_from(stage)) or 0
        created, updated = ([], []) if self.postgres else self._changed()
        now = literal(utcnow(), UTCDateTime())
        values: dict[str, Any] = {name: stage.c[name] for name in self.columns}
        values["organisation_id"] = literal(self.organisation_id, Uuid())
        values["updated_at"] = now
        created_at = stage.c.created_at if self.kind == KIND_KEY else None
        values["created_at"] = func.coalesce(created_at, now) if created_at is not None else now
        upsert = conflict_insert(self.connection.dialect.name)
        statement = upsert(target).from_select(
            list(values), select(*values.values()).where(stage.c.version >= 0)
        )
        kept = {"id", "organisation_id"} | ({"created_at"} if self.kind != KIND_KEY else set())
        set_: dict[str, Any] = {
            name: statement.excluded[name] for name in values if name not in kept
        }
        if self.kind == KIND_KEY:
            # A key keeps what a command the store has not acknowledged yet decided about it.
            set_ = {
                name: keep_pending_decision_sql(
                    name, key_id=target.c.id, incoming=value, held=target.c[name]
                )
                for name, value in set_.items()
            }
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_=set_,
            where=and_(
                statement.excluded.version > target.c.version,
                target.c.organisation_id == statement.excluded.organisation_id,
            ),
        )
        if self.postgres:
            # xmax is 0 on a row this statement inserted, set on one it updated.
            returned = statement.returning(target.c.id, literal_column("xmax = 0"))
            for object_id, inserted in self.connection.execute(returned):
                (created if inserted else updated).append(object_id)
        else:
            self.connection.execute(statement)
        self.counts.created += len(created)
        self.counts.updated += len(updated)
        self.counts.unchanged += staged - len(created) - len(updated)
        self.counts.sample("created", created)
        self.counts.sample("updated", updated)
        return created, updated

    def _changed(self) -> tuple[list[Any], list[Any]]:
        """SQLite has no xmax: the ids to create and update, read before the upsert."""
        stage, target = self.stage, self.target
        rows = self.connection.execute(
            select(stage.c.id, target.c.id.is_(None))
            .select_from(stage.outerjoin(target, target.c.id == stage.c.id))
            .where(or_(target.c.id.is_(None), target.c.version < stage.c.version))
        ).all()
        return [row[0] for row in rows if row[1]], [row[0] for row in rows if not row[1]]

    def _arm_leaver_check(self) -> None:
        """The check of the organisation's keys for leavers, armed in the chunk's transaction
        (models.actions.leaver_checks): the load's caller checks once it is done
        (odock_reconcile.review_loaded_keys), and should it die first, this runs it. Never
        disarmed: a worker runs it once per chunk of keys changed, one statement when nothing
        is due."""
        with Session(bind=self.connection) as session:
            leaver_checks.arm(
                session, organisation_id=self.organisation_id, actor=self.actor, key_ids=None
            )
            session.flush()

    def _audit(self, action: str, after: dict[str, Any]) -> None:
        self.connection.execute(
            insert(AuditEvent),
            [
                {
                    "id": new_id(),
                    "organisation_id": self.organisation_id,
                    "source": self.actor.source.value,
                    "actor": str(self.actor),
                    "action": action,
                    "target_type": TARGET_TYPES[self.kind],
                    "target_id": str(self.organisation_id),
                    "before": None,
                    "after": after,
                    "created_at": utcnow(),
                }
            ],
        )

    # -- what a complete listing no longer contains

    def settle_unseen(self, *, started_at: datetime, forget_after: int) -> None:
        """After a complete listing: what it contained is seen again; what the organisation
        holds that it lacked (but what changed since it started: a push that raced with it) is
        marked unseen, and forgotten (deleted and buried) once `forget_after` consecutive
        complete listings have lacked it. One listing's word is not enough: offset paging
        skips an item when another is deleted between two page reads."""
        self.flush()
        if self.postgres:
            self.connection.exec_driver_sql(f"ANALYZE {self.seen.name}")  # a hash anti-join
        else:
            self.connection.exec_driver_sql(
                f"CREATE INDEX {self.seen.name}_id ON {self.seen.name} (id)"
            )
        self._seen_again()
        self._mark_unseen(started_at)
        self._forget(forget_after)
        self.connection.commit()

    def _seen_again(self) -> None:
        target = self.target
        listed = exists().where(self.seen.c.id == target.c.id)
        again = self.connection.scalars(
            target.update()
            .where(target.c.organisation_id == self.organisation_id, target.c.unseen_listings > 0)
            .where(listed)
            .values(unseen_since=None, unseen_listings=0, updated_at=target.c.updated_at)
            .returning(target.c.id)
        ).all()
        if again:
            self.counts.seen_again += len(again)
            self.counts.sample("seen_again", again)
            self._audit(
                f"odock.{self.kind}s.seen_again",
                {"seen_again": len(again), "ids": [str(i) for i in again[:SAMPLE]]},
            )

    def _mark_unseen(self, started_at: datetime) -> None:
        target, since = self.target, literal(started_at, UTCDateTime())
        marked = self.connection.execute(
            target.update()
            .where(
                target.c.organisation_id == self.organisation_id,
                target.c.updated_at < started_at,
                ~exists().where(self.seen.c.id == target.c.id),
            )
            .values(
                unseen_since=func.coalesce(target.c.unseen_since, since),
                unseen_listings=target.c.unseen_listings + 1,
                updated_at=target.c.updated_at,  # Odock did not change it: a race guard's column
            )
            .returning(target.c.id, target.c.unseen_listings)
        ).all()
        if marked:
            self.counts.unseen += len(marked)
            self.counts.sample("unseen", [row[0] for row in marked])
            self._audit(
                f"odock.{self.kind}s.unseen",
                {
                    "unseen": len(marked),
                    "ids": [str(row[0]) for row in marked[:SAMPLE]],
                    "listings": {str(row[0]): row[1] for row in marked[:SAMPLE]},
                },
            )

    def _forget(self, forget_after: int) -> None:
        target = self.target
        gone = self.connection.execute(
            target.delete()
            .where(
                target.c.organisation_id == self.organisation_id,
                target.c.unseen_listings >= forget_after,
            )
            .returning(target.c.id, target.c.version)
        ).all()
        if gone:
            self._bury([(row[0], row[1]) for row in gone])
            self.counts.deleted += len(gone)
            self.counts.sample("deleted", [row[0] for row in gone])
            self._audit(
                f"odock.{self.kind}s.deleted",
                {
                    "deleted": len(gone),
                    "ids": [str(row[0]) for row in gone[:SAMPLE]],
                    "unseen_listings": forget_after,
                },
            )

    def _bury(self, gone: list[tuple[uuid.UUID, int]]) -> None:
        upsert = conflict_insert(self.connection.dialect.name)
        statement = upsert(OdockTombstone)
        statement = statement.on_conflict_do_update(
            index_elements=["organisation_id", "kind", "object_id"],
            set_={
                "version": statement.excluded.version,
                "deleted_at": statement.excluded.deleted_at,
            },
        )
        now = utcnow()
        rows = [
            {
                "organisation_id": self.organisation_id,
                "kind": self.kind,
                "object_id": object_id,
                "version": version,
                "deleted_at": now,
            }
            for object_id, version in gone
        ]
        self.connection.execute(statement, rows)

    def held(self) -> int:
        target = self.target
        count = select(func.count()).where(target.c.organisation_id == self.organisation_id)
        return self.connection.scalar(count) or 0


def _newest_per_id(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per id, the newest version (an id twice in one chunk cannot be upserted twice
    by one statement)."""
    newest: dict[Any, tuple[Any, ...]] = {}
    for row in rows:
        held = newest.get(row[0])
        if held is None or row[-1] > held[-1]:
            newest[row[0]] = row
    return list(newest.values())
