"""A directory import in flight: how a create that meets its uncommitted people is answered.

On PostgreSQL a large import writes its people while it still reads the directory, in
transactions that commit only once the read is complete and the plan has passed the safety
checks (worker.directory_create_stream): minutes, for a first import of a big directory.
A create of an email the import has written would wait on the unique index all that time,
until its lock timeout, and answer 503 five seconds later. So the import's transactions hold
a shared advisory lock on their organisation (`mark_import`), and a create that finds it held
waits for a row lock no longer than a moment, then answers at once that it cannot be served
now (Busy: 503 with a Retry-After). It is not answered as taken: once the import has
committed, the same create finds the person the import made, and a SCIM create links that
person (a 409 would have told the IdP to stop trying). A create of an email the import does
not hold goes through as usual.

SQLite: an import writes nothing before its read ends; nothing to mark.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    bindparam,
    case,
    func,
    select,
    text,
    true,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.errors import Busy

IMPORT_LOCK = 0x0D1B_0417  # the advisory-lock class of imports in flight (two-key form)
# How long a create waits for a row lock while an import is in flight: a create of the
# same email by another request commits within it; an import's person never does.
HELD_EMAIL_WAIT = "200ms"
# An import of a large directory is read for minutes: the create is worth sending again then.
IMPORT_RETRY_AFTER_SECONDS = 30
_LOCK_NOT_AVAILABLE = "55P03"


def _keys(organisation_id: uuid.UUID) -> dict[str, int]:
    crc = zlib.crc32(organisation_id.bytes)
    return {"kind": IMPORT_LOCK, "organisation": crc - (1 << 32) if crc >= 1 << 31 else crc}


def mark_import(session: Session, organisation_id: uuid.UUID) -> None:
    """This transaction writes people of an import of this organisation until it ends."""
    session.execute(
        text("SELECT pg_advisory_xact_lock_shared(:kind, :organisation)"),
        _keys(organisation_id),
    )


def in_flight_clause(prefix: str = "") -> ColumnElement[bool]:
    """Whether an import of the organisation holds people not yet committed, as SQL
    (PostgreSQL) a create's own statement can carry; its values are `in_flight_values`.
    The probe takes the lock exclusively and gives it back at once: it fails only while an
    import holds it shared (or, for an instant, another probe: then the create waits only
    a moment for a lock, which nobody holds long)."""
    kind: BindParameter[int] = bindparam(f"{prefix}import_kind")
    organisation: BindParameter[int] = bindparam(f"{prefix}import_org")
    taken = func.pg_try_advisory_lock(kind, organisation, type_=Boolean)
    return case((taken, ~func.pg_advisory_unlock(kind, organisation, type_=Boolean)), else_=true())


def in_flight_values(organisation_id: uuid.UUID, prefix: str = "") -> dict[str, int]:
    keys = _keys(organisation_id)
    return {f"{prefix}import_kind": keys["kind"], f"{prefix}import_org": keys["organisation"]}


def import_in_flight(session: Session, organisation_id: uuid.UUID) -> bool:
    """The probe in a statement of its own, for a create whose look-ups do not carry it."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(session.scalar(select(in_flight_clause()), in_flight_values(organisation_id)))


@contextmanager
def not_waiting_on_an_import(session: Session, importing: bool) -> Iterator[None]:
    """Run a create (its writes flushed within the block); while an import of the
    organisation is in flight (`importing`: import_in_flight, or the create's look-ups
    carrying in_flight_clause), a row lock held longer than HELD_EMAIL_WAIT (the import's
    person with this email) raises Busy instead, nothing of the block written."""
    if not importing:
        yield
        return
    try:
        with session.begin_nested():
            usual = session.scalar(text("SELECT current_setting('lock_timeout')"))
            session.execute(text(f"SET LOCAL lock_timeout = '{HELD_EMAIL_WAIT}'"))
            yield
            session.execute(
                text("SELECT set_config('lock_timeout', :usual, true)"), {"usual": usual}
            )
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise Busy(
            "a directory import is adding this organisation's people and holds this one:"
            " send the request again once it has ended",
            retry_after=IMPORT_RETRY_AFTER_SECONDS,
        ) from None
