"""SCIM users read as plain rows: the columns a User document shows, with its emails and
groups folded into JSON by the database, in one query and without ORM entities.

Reads are most of what an IdP sends, and loading a user, its person, emails, groups and
organisation as entities cost more CPU than the rest of the request (a 70-column row, an
identity map, the loaders); a record is the dozen values the document needs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, String, Text, Uuid, bindparam, cast, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from connectors.scim.casting import GroupRef
from connectors.scim.ids import named_id
from models.db import PREPARED, driver_read
from models.entities import OrganisationSettings, ScimEmail, ScimUser, Team, TeamMembership, User
from models.enums import Source, UserStatus
from models.errors import NotFound


@dataclass(frozen=True, slots=True)
class EmailRecord:
    value: str
    type: str | None
    primary: bool | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What a User document shows, and the attribute its organisation's end date goes in."""

    id: str
    user_name: str
    external_id: str | None
    given_name: str | None
    family_name: str | None
    formatted_name: str | None
    display_name: str | None
    employee_number: str | None
    department: str | None
    manager_id: str | None
    extra: dict[str, Any]
    active: bool
    access_ends_at: datetime | None
    created_at: datetime
    last_modified: datetime
    emails: list[EmailRecord]
    groups: list[GroupRef]
    access_end_attribute: str


def record_of(
    scim_user: ScimUser, access_end_attribute: str, groups: list[GroupRef] | None = None
) -> UserRecord:
    """The record of a user held as an entity (one just written); `groups` as read with it,
    else the entity's."""
    user = scim_user.user
    return UserRecord(
        id=str(scim_user.id),
        user_name=scim_user.user_name,
        external_id=scim_user.external_id,
        given_name=scim_user.given_name,
        family_name=scim_user.family_name,
        formatted_name=scim_user.formatted_name,
        display_name=scim_user.display_name,
        employee_number=scim_user.employee_number,
        department=scim_user.department,
        manager_id=scim_user.manager_id,
        extra=scim_user.extra or {},  # copied by a PATCH, which changes its document in place
        active=user.status is not UserStatus.REVOKED and not scim_user.held_inactive,
        access_ends_at=user.access_ends_at,
        created_at=scim_user.created_at,
        last_modified=max(scim_user.updated_at, user.updated_at),
        emails=[EmailRecord(e.value, e.type, e.primary) for e in scim_user.emails],
        groups=(
            groups
            if groups is not None
            else [GroupRef(str(team.id), team.name) for team in scim_user.groups]
        ),
        access_end_attribute=access_end_attribute,
    )


def user_by_id(session: Session, organisation_id: uuid.UUID, scim_id: str) -> UserRecord:
    """This organisation's SCIM user; anything else (another tenant's, a bad id) is 404."""
    key = named_id(scim_id)
    if key is None:
        raise NotFound(f"user {scim_id} not found")
    dialect = session.get_bind().dialect.name
    found = user_records(session, _by_id(dialect), {"id": key, "organisation_id": organisation_id})
    if not found:
        raise NotFound(f"user {scim_id} not found")
    return found[0]


@cache
def _by_id(dialect: str) -> Select[Any]:
    return (
        user_query(dialect)
        .where(
            ScimUser.id == bindparam("id", type_=Uuid()),
            ScimUser.organisation_id == bindparam("organisation_id", type_=Uuid()),
        )
        .execution_options(**{PREPARED: True})
    )


@cache
def user_query(dialect: str) -> Select[Any]:
    """The columns of a user's record, from its SCIM row, its person and its organisation's
    settings; the caller adds the conditions and the order. Built once per dialect:
    building the statement cost more than running it."""
    return (
        select(
            id_text(dialect, ScimUser.id),
            ScimUser.user_name,
            ScimUser.external_id,
            ScimUser.given_name,
            ScimUser.family_name,
            ScimUser.formatted_name,
            ScimUser.display_name,
            ScimUser.employee_number,
            ScimUser.department,
            ScimUser.manager_id,
            cast(ScimUser.extra, Text),
            ScimUser.held_inactive,
            ScimUser.created_at,
            ScimUser.updated_at,
            User.status,
            User.access_ends_at,
            User.updated_at,
            OrganisationSettings.scim_access_end_attribute,
            _emails(),
            group_rows(dialect),
        )
        .select_from(ScimUser)
        .join(User, User.id == ScimUser.user_id)
        .join(
            OrganisationSettings,
            OrganisationSettings.organisation_id == ScimUser.organisation_id,
        )
    )


def user_records(
    session: Session, query: Select[Any], parameters: dict[str, Any] | None = None
) -> list[UserRecord]:
    """The records `query` finds; a query marked PREPARED (models.db) runs prepared, on
    PostgreSQL outside a transaction straight through the driver (models.db.driver_read)."""
    prepared = query.get_execution_options().get(PREPARED)
    rows = driver_read(session, query, parameters or {}) if prepared else None
    if rows is None:
        options = _PREPARED if prepared else _POSITIONAL
        rows = session.connection().execute(query, parameters, execution_options=options).all()
    return [_remembered(tuple(row)) for row in rows]


# A record is a pure function of its row, and the row is all text, numbers, datetimes and
# enums (its JSON comes as text): IdPs re-read the same users, and the same row gives back the
# same record object, so the web can keep its rendered document by the record's identity.
_RECORDS: dict[tuple[Any, ...], UserRecord] = {}
REMEMBERED_RECORDS = 4096


def _remembered(row: tuple[Any, ...]) -> UserRecord:
    record = _RECORDS.get(row)
    if record is None:
        record = _record(row)
        if len(_RECORDS) >= REMEMBERED_RECORDS:
            _RECORDS.clear()
        _RECORDS[row] = record
    return record


# Rows are read by position alone: SQLAlchemy need not map a cached statement's result
# columns onto the columns of each new statement object (a third of a filtered read's CPU
# in SQLAlchemy, profiled).
_POSITIONAL = {"_result_disable_adapt_to_context": True}
_PREPARED = {**_POSITIONAL, PREPARED: True}


def _record(row: Any) -> UserRecord:
    (scim_id, user_name, external_id, given_name, family_name, formatted_name) = row[:6]
    (display_name, employee_number, department, manager_id, extra, held_inactive) = row[6:12]
    (created_at, updated_at, status, access_ends_at, person_updated_at) = row[12:17]
    (access_end_attribute, emails, groups) = row[17:]
    return UserRecord(
        id=scim_id,
        user_name=user_name,
        external_id=external_id,
        given_name=given_name,
        family_name=family_name,
        formatted_name=formatted_name,
        display_name=display_name,
        employee_number=employee_number,
        department=department,
        manager_id=manager_id,
        extra=_parsed(extra) or {},
        active=status is not UserStatus.REVOKED and not held_inactive,
        access_ends_at=access_ends_at,
        created_at=created_at,
        last_modified=max(updated_at, person_updated_at),
        emails=[
            EmailRecord(value, kind, None if primary is None else bool(primary))
            for _position, value, kind, primary in sorted(_parsed(emails) or [], key=_first)
        ],
        groups=group_refs(groups),
        access_end_attribute=access_end_attribute,
    )


def group_refs(text: str | None) -> list[GroupRef]:
    """The groups `group_rows` read, in order of their names."""
    return [
        GroupRef(team_id, name) for _key, team_id, name in sorted(_parsed(text) or [], key=_first)
    ]


def _parsed(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _first(values: list[Any]) -> Any:
    return values[0]


class json_rows(FunctionElement[Any]):
    """The rows of a subquery as one JSON array of arrays, as text (in no particular order:
    SQLite before 3.44 cannot order an aggregate, so each array leads with what it sorts by)."""

    inherit_cache = True
    name = "json_rows"
    type = Text()


@compiles(json_rows)
def _json_rows_postgresql(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"CAST(json_agg(json_build_array({compiler.process(element.clauses, **kw)})) AS TEXT)"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: Any, **kw: Any) -> str:
    return f"CAST(json_group_array(json_array({compiler.process(element.clauses, **kw)})) AS TEXT)"


def _emails() -> Any:
    rows = json_rows(ScimEmail.position, ScimEmail.value, ScimEmail.type, ScimEmail.primary)
    return select(rows).where(ScimEmail.scim_user_id == ScimUser.id).scalar_subquery()


def group_rows(dialect: str) -> Any:
    """The SCIM groups (teams an IdP pushed) the person is in, by name."""
    rows = json_rows(Team.name_key, id_text(dialect, Team.id), Team.name)
    return (
        select(rows)
        .select_from(TeamMembership)
        .join(Team, Team.id == TeamMembership.team_id)
        .where(TeamMembership.user_id == ScimUser.user_id, Team.external_source == Source.SCIM)
        .scalar_subquery()
    )


def id_text(dialect: str, column: Any) -> Any:
    """A UUID column as its canonical text (8-4-4-4-12, lower case) on this dialect.
    PostgreSQL's uuid casts to it; the embedded SQLite stores the 32 hex digits alone, so the
    dashes are put in."""
    if dialect == "postgresql":
        return cast(column, String)
    hex_digits = cast(column, String)
    parts = [func.substr(hex_digits, start, length) for start, length in UUID_GROUPS]
    dashed: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        dashed = dashed + "-" + part
    return dashed


UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
