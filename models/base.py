"""Declarative base, id generation and the column helpers every entity shares."""

from __future__ import annotations

import functools
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnDefault, DateTime, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import ColumnProperty, DeclarativeBase, Mapped, mapped_column

from models.errors import InvalidInput

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def in_utc(moment: datetime, name: str) -> datetime:
    """`moment` (which has a zone) in UTC; a time near the calendar's ends that UTC cannot
    hold (9999-12-31T23:59:59-12:00) is InvalidInput, not an OverflowError."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} is out of range", field=name) from None


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout) so primary-key indexes grow at the end."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


_Entity = TypeVar("_Entity", bound=Base)


def new_row(kind: type[_Entity], **columns: Any) -> _Entity:
    """A new entity of these column values, for the rows a hot write adds (audit events, a
    SCIM create's person): each value goes straight into the entity's dict instead of through
    the instrumented attribute set (history, modified events; a SCIM create made ~50 of
    them). Safe for an object no session holds yet: the flush, and models.row_writes, insert
    a new object's values from its dict. A name that is not a plain column (a relationship)
    goes through the constructor as usual, and so does every name of a polymorphic kind
    (its constructor sets the discriminator). The mapper is configured by then
    (`_column_keys` reads its attributes), the other thing the constructor would see to."""
    if not _column_keys(kind).issuperset(columns):
        return kind(**columns)
    entity: _Entity = kind.__mapper__.class_manager.new_instance()
    entity.__dict__.update(columns)
    return entity


def unsaved_defaults(kind: type[_Entity], **key: Any) -> _Entity:
    """The entity of `key` as its first writer would store it (its columns' Python defaults),
    in no session and never saved: what a reader answers while no row exists, so that a read
    writes nothing."""
    values = {}
    for attribute in kind.__mapper__.column_attrs:
        default = attribute.columns[0].default
        if attribute.key in key or not isinstance(default, ColumnDefault):
            continue
        if default.is_callable:
            values[attribute.key] = default.arg(None)  # wrapped by SQLAlchemy: takes a context
        elif default.is_scalar:
            values[attribute.key] = default.arg
    return kind(**key, **values)


@functools.cache
def _column_keys(kind: type[Base]) -> frozenset[str]:
    attributes = kind.__mapper__.attrs
    if kind.__mapper__.polymorphic_on is not None:
        return frozenset()
    return frozenset(a.key for a in attributes if isinstance(a, ColumnProperty))


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
