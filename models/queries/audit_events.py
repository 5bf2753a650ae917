"""Reading the audit trail: filtered pages (newest first) and an export in constant memory.

Both walk a keyset on (occurred_at, id): a page or batch is one indexed range query, a
cursor stays valid however many events arrive meanwhile, and nothing is held between batches.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, String, and_, cast, or_, select
from sqlalchemy.orm import Session

from models.base import in_utc
from models.entities import AuditEvent
from models.enums import Source
from models.errors import InvalidInput
from models.text import visible

MAX_PAGE = 500
EXPORT_BATCH = 5000
# The shorthand target filters of the API and CLI, and the target_type each one means.
TARGET_KINDS = {"user": "user", "team": "team", "key": "api_key"}
# A directory import's events that stand for many changes at once (models.directory): a
# batch of people created (`after.users` lists their ids), and a team's members added with
# that batch (target id the team's, `after.members` lists the users' ids).
USER_BATCH, MEMBERSHIP_BATCH = "user_batch", "membership_batch"
COLUMNS = (
    AuditEvent.id,
    AuditEvent.occurred_at,
    AuditEvent.organisation_id,
    AuditEvent.source,
    AuditEvent.actor,
    AuditEvent.actor_user_id,
    AuditEvent.action,
    AuditEvent.target_type,
    AuditEvent.target_id,
    AuditEvent.before,
    AuditEvent.after,
    AuditEvent.request_id,
)
CSV_FIELDS = [column.key for column in COLUMNS]


@dataclass(frozen=True)
class AuditFilter:
    organisation_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: Source | None = None
    actor: str | None = None
    actor_user_id: uuid.UUID | None = None
    action: str | None = None  # an exact action, or a prefix ending in ".*"
    target_type: str | None = None
    target_id: str | None = None
    request_id: str | None = None
    # Events about one user or team, the directory's batch events that list them included.
    user_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Position:
    occurred_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class AuditPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def list_events(
    session: Session, filters: AuditFilter, *, limit: int = 100, cursor: str | None = None
) -> AuditPage:
    """One page, newest first; `next_cursor` continues exactly after its last event."""
    query = _filtered(filters)
    if cursor:
        after = decode_cursor(cursor)
        query = query.where(
            AuditEvent.occurred_at <= after.occurred_at,  # a range the index can seek to
            or_(
                AuditEvent.occurred_at < after.occurred_at,
                and_(AuditEvent.occurred_at == after.occurred_at, AuditEvent.id < after.id),
            ),
        )
    query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(Position(rows[-1].occurred_at, rows[-1].id)) if more else None
    return AuditPage([event_view(row) for row in rows], next_cursor)


def iter_events(
    session: Session, filters: AuditFilter, *, batch_size: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every matching event, oldest first, fetched in keyset batches of `batch_size`."""
    after: Position | None = None
    while True:
        query = _filtered(filters)
        if after is not None:
            query = query.where(
                AuditEvent.occurred_at >= after.occurred_at,  # a range the index can seek to
                or_(
                    AuditEvent.occurred_at > after.occurred_at,
                    and_(AuditEvent.occurred_at == after.occurred_at, AuditEvent.id > after.id),
                ),
            )
        query = query.order_by(AuditEvent.occurred_at, AuditEvent.id).limit(batch_size)
        rows = session.execute(query).all()
        session.rollback()  # no transaction (and no snapshot) held open between batches
        for row in rows:
            yield event_view(row)
        if len(rows) < batch_size:
            return
        after = Position(rows[-1].occurred_at, rows[-1].id)


def _filtered(filters: AuditFilter) -> Select[Any]:
    query = select(*COLUMNS)
    conditions = [
        (filters.organisation_id, lambda v: AuditEvent.organisation_id == v),
        (filters.since, lambda v: AuditEvent.occurred_at >= v),
        (filters.until, lambda v: AuditEvent.occurred_at < v),
        (filters.source, lambda v: AuditEvent.source == v),
        (filters.actor, lambda v: AuditEvent.actor == v),
        (filters.actor_user_id, lambda v: AuditEvent.actor_user_id == v),
        (filters.target_type, lambda v: AuditEvent.target_type == v),
        (filters.target_id, lambda v: AuditEvent.target_id == v),
        (filters.request_id, lambda v: AuditEvent.request_id == v),
    ]
    for value, condition in conditions:
        if value is not None:
            query = query.where(condition(value))
    if filters.user_id is not None:
        query = query.where(_about_user(str(filters.user_id)))
    if filters.team_id is not None:
        query = query.where(
            AuditEvent.target_type.in_(("team", MEMBERSHIP_BATCH)),
            AuditEvent.target_id == str(filters.team_id),
        )
    if filters.action is not None:
        if filters.action.endswith(".*"):
            prefix = _escape_like(filters.action[:-1])
            query = query.where(AuditEvent.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditEvent.action == filters.action)
    return query


def _about_user(user_id: str) -> Any:
    """The user's own events, and the batch events whose `after` lists their id. A UUID in
    its text form names one user, whatever key it is under, so the stored JSON's text is
    searched for it (batch events are few: one per 2,000 people, and per team and batch)."""
    quoted = f'%"{user_id}"%'  # hex digits and dashes: nothing LIKE would read as a pattern
    return or_(
        and_(AuditEvent.target_type == "user", AuditEvent.target_id == user_id),
        and_(
            AuditEvent.target_type.in_((USER_BATCH, MEMBERSHIP_BATCH)),
            cast(AuditEvent.after, String).like(quoted),
        ),
    )


def event_view(row: Row[Any] | AuditEvent) -> dict[str, Any]:
    """Who, what, where from, before and after, and the request that caused it."""
    return {
        "id": str(row.id),
        "occurred_at": row.occurred_at.isoformat(),
        "organisation_id": str(row.organisation_id) if row.organisation_id else None,
        "source": Source(row.source).value,
        "actor": row.actor,
        "actor_user_id": str(row.actor_user_id) if row.actor_user_id else None,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
        "request_id": row.request_id,
    }


def jsonl_line(view: dict[str, Any]) -> str:
    return json.dumps(view, separators=(",", ":"), default=str) + "\n"


def csv_header() -> str:
    return _csv_row(CSV_FIELDS)


def csv_line(view: dict[str, Any]) -> str:
    """One CSV row; before and after are JSON text in their cells (non-ASCII escaped, as in
    JSON lines), the other cells with their invisible characters marked (an actor named with
    a right-to-left override is read in a spreadsheet: models.text.visible) and never read
    as a formula (_inert)."""
    cells = [
        json.dumps(view[name], separators=(",", ":"), default=str)
        if name in ("before", "after") and view[name] is not None
        else ("" if view[name] is None else _inert(visible(str(view[name]))))
        for name in CSV_FIELDS
    ]
    return _csv_row(cells)


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in a
# name an identity provider sent would run in the auditor's Excel): OWASP's CSV injection.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """The cell, with a leading apostrophe when a spreadsheet would take it for a formula."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def _csv_row(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def encode_cursor(position: Position) -> str:
    raw = f"{position.occurred_at.isoformat()}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    refusal = InvalidInput("cursor is not one this API gave out", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, event_id = raw.partition("|")
        occurred_at = datetime.fromisoformat(moment)
        position = Position(occurred_at, uuid.UUID(event_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refusal from None
    if occurred_at.tzinfo is None:
        raise refusal
    return Position(in_utc(occurred_at, "cursor"), position.id)


def parse_moment(value: str, name: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z", field=name
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else in_utc(moment, name)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
