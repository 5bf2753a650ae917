"""The stand-in's key store: Odock's management-plane tables, in a database of their own.

Keys are stored with the SHA-256 of their value (never the value), as the gateway looks them
up. Every change bumps the object's `version` (microseconds since the epoch, as Odock's
`updated_at` would give). Commands are remembered by id, so a repeated command is applied once
and answered with its first `applied_at`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

metadata = MetaData()

keys = Table(
    "keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("masked_value", String(64), nullable=False),
    Column("owner_user_id", Uuid),
    Column("owner_team_id", Uuid),
    Column("created_by_user_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("rotation_requested_at", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("body", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
    # Set by odock-sync's budget.freeze / budget.thaw commands: the gateway stops spending.
    Column("frozen", Boolean, nullable=False, default=False),
)

quotas = Table(
    "quotas",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("body", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", Uuid, nullable=False),
    Column("type", String(32), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

KEY_COLUMNS = (
    "type",
    "name",
    "masked_value",
    "owner_user_id",
    "owner_team_id",
    "created_by_user_id",
    "created_at",
    "expires_at",
    "revoked",
    "revoked_at",
    "version",
)


class UnknownKey(Exception):
    """A command names a key the store does not hold."""


@dataclass(frozen=True)
class CachedKey:
    """What the gateway needs to decide on a request: the key's id and whether it is live."""

    id: str
    active: bool


def hash_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def version_now() -> int:
    return int(now().timestamp() * 1_000_000)


def create_database(admin_url: str, name: str) -> str:
    """A PostgreSQL database of the stand-in's own beside odock-sync's; its URL."""
    url = make_url(admin_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class KeyStore:
    """Odock's management-plane store, as far as keys, budgets, quotas and commands go."""

    def __init__(self, database_url: str) -> None:
        connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(database_url, connect_args=connect_args)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def clear(self) -> None:
        with self.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(table.delete())

    def create_key(
        self,
        organisation_id: uuid.UUID,
        *,
        owner_user_id: uuid.UUID | None = None,
        owner_team_id: uuid.UUID | None = None,
        name: str = "stand-in key",
        key_id: uuid.UUID | None = None,
    ) -> tuple[uuid.UUID, str]:
        """A new active key; its id and its value (the only time the value is seen)."""
        key_id, value = key_id or uuid.uuid4(), "sk-odock-" + secrets.token_urlsafe(24)
        row = {
            "id": key_id,
            "organisation_id": organisation_id,
            "key_hash": hash_key(value),
            "type": "USER" if owner_user_id else "TEAM" if owner_team_id else "ORGANISATION",
            "name": name,
            "masked_value": f"sk-…{value[-4:]}",
            "owner_user_id": owner_user_id,
            "owner_team_id": owner_team_id,
            "created_by_user_id": owner_user_id,
            "created_at": now(),
            "revoked": False,
            "version": version_now(),
        }
        with self.engine.begin() as connection:
            connection.execute(insert(keys).values(**row))
        return key_id, value

    def put_owned(
        self, table: Table, organisation_id: uuid.UUID, body: dict[str, Any]
    ) -> uuid.UUID:
        object_id = uuid.uuid4()
        with self.engine.begin() as connection:
            connection.execute(
                insert(table).values(
                    id=object_id, organisation_id=organisation_id, body=body, version=version_now()
                )
            )
        return object_id

    def key_for_hash(self, key_hash: str) -> CachedKey | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(keys.c.id, keys.c.revoked, keys.c.expires_at).where(
                    keys.c.key_hash == key_hash
                )
            ).first()
        if row is None:
            return None
        expired = row.expires_at is not None and _aware(row.expires_at) <= now()
        return CachedKey(str(row.id), not row.revoked and not expired)

    def hash_of(self, key_id: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.scalar(select(keys.c.key_hash).where(keys.c.id == uuid.UUID(key_id)))

    def key(self, key_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(keys).where(keys.c.id == key_id)).mappings().first()
        return dict(row) if row else None

    def apply_command(self, body: dict[str, Any]) -> datetime:
        """Apply a command once; a repeat answers the first application's time."""
        with self.engine.begin() as connection:
            applied = connection.scalar(
                select(commands.c.applied_at).where(commands.c.id == body["id"])
            )
            if applied is not None:
                return _aware(applied)
            if str(body["type"]).startswith("budget."):
                subject_id = uuid.UUID(body["budget_id"])
                table, changes = budgets, _budget_changes(body)
            else:
                subject_id = uuid.UUID(body["key_id"])
                table, changes = keys, _command_changes(body)
            done = connection.execute(
                update(table)
                .where(table.c.id == subject_id)
                .values(**changes, version=version_now())
            )
            if done.rowcount == 0:
                raise UnknownKey(str(subject_id))
            at = now()
            connection.execute(
                insert(commands).values(
                    id=body["id"], key_id=subject_id, type=body["type"], applied_at=at
                )
            )
            return at

    def budget(self, budget_id: uuid.UUID) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(budgets).where(budgets.c.id == budget_id)).mappings()
            found = row.first()
        return dict(found) if found else None

    def applied_at(self, command_id: str) -> datetime | None:
        with self.engine.connect() as connection:
            at = connection.scalar(select(commands.c.applied_at).where(commands.c.id == command_id))
        return _aware(at) if at else None

    def page(
        self, kind: str, organisation_id: uuid.UUID, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a listing in id order; the cursor is the last id of the page."""
        table = {"keys": keys, "budgets": budgets, "quotas": quotas}[kind]
        query = select(table).where(table.c.organisation_id == organisation_id)
        if cursor:
            query = query.where(table.c.id > uuid.UUID(cursor))
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(table.c.id).limit(limit + 1)).mappings()
            items = [_listed(kind, dict(row)) for row in rows]
        more = len(items) > limit
        items = items[:limit]
        return items, (items[-1]["id"] if more else None)

    def page_by_offset(
        self, kind: str, organisation_id: uuid.UUID, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a listing in id order from `offset`; the cursor is the next offset."""
        table = {"keys": keys, "budgets": budgets, "quotas": quotas}[kind]
        query = select(table).where(table.c.organisation_id == organisation_id)
        query = query.order_by(table.c.id).offset(offset).limit(limit + 1)
        with self.engine.connect() as connection:
            items = [_listed(kind, dict(row)) for row in connection.execute(query).mappings()]
        more = len(items) > limit
        return items[:limit], (str(offset + limit) if more else None)


def _command_changes(body: dict[str, Any]) -> dict[str, Any]:
    kind = body["type"]
    if kind == "key.revoke":
        return {"revoked": True, "revoked_at": now()}
    if kind == "key.restore":
        return {"revoked": False, "revoked_at": None}
    if kind == "key.reassign":
        owner = _uuid_or_none(body.get("owner_user_id"))
        return {
            "owner_user_id": owner,
            "owner_team_id": _uuid_or_none(body.get("owner_team_id")),
            "type": "USER" if owner else "TEAM",
        }
    if kind == "key.rotate_request":
        return {"rotation_requested_at": now()}
    raise ValueError(f"unknown command type {kind!r}")


def _budget_changes(body: dict[str, Any]) -> dict[str, Any]:
    kind = body["type"]
    if kind not in ("budget.freeze", "budget.thaw"):
        raise ValueError(f"unknown command type {kind}")
    return {"frozen": kind == "budget.freeze"}


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _listed(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    if kind != "keys":
        return {"id": str(row["id"]), **row["body"], "version": row["version"]}
    item: dict[str, Any] = {"id": str(row["id"])}
    for name in KEY_COLUMNS:
        value = row[name]
        if isinstance(value, datetime):
            value = _aware(value).isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        item[name] = value
    item.update(revealed_by_user_id=None, revealed_at=None)
    return item


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rename_key(store: KeyStore, key_id: uuid.UUID, name: str) -> None:
    """A change made in Odock's own UI: a new name and a newer version."""
    with store.engine.begin() as connection:
        connection.execute(
            update(keys).where(keys.c.id == key_id).values(name=name, version=version_now())
        )


def delete_key(store: KeyStore, key_id: uuid.UUID) -> None:
    """A key deleted in Odock's own UI: gone from the store (the gateway may still cache it)."""
    with store.engine.begin() as connection:
        connection.execute(keys.delete().where(keys.c.id == key_id))
