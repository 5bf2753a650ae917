"""SCIM reads: the explicit attribute maps from SCIM names to columns (for filters and
sorting), and the paged searches that run a translated filter in the database.

The attributes kept in their own columns map to those columns; the others are read from the
JSON column `scim_users.extra` (see casting), with the same expressions on PostgreSQL and
SQLite. Case rules follow each attribute's `caseExact` in the schemas.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Enum,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter, False_
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import replacement_traverse

from connectors.scim import filters
from connectors.scim.casting import MemberRef
from connectors.scim.errors import InvalidFilter, InvalidValue
from connectors.scim.filters import AttributeMap, Column, Kind, MultiValued
from connectors.scim.schemas import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUPS_VALUE,
    MANAGER_VALUE,
    MEMBER_VALUE,
    USER,
    USER_SCHEMA,
    Attribute,
)
from models.db import PREPARED
from models.entities import (
    OrganisationSettings,
    ScimEmail,
    ScimUser,
    Team,
    TeamMembership,
    User,
)
from models.enums import Source, UserStatus
from models.queries.scim_records import id_text, user_query, user_records


class json_elements(FunctionElement[Any]):
    """The elements of the JSON array under `key` of a JSON column, as rows of `value`."""

    inherit_cache = True
    name = "json_elements"


@compiles(json_elements)
def _json_elements_postgresql(element: json_elements, compiler: Any, **kw: Any) -> str:
    document, key = element.clauses
    return (
        f"json_array_elements({compiler.process(document, **kw)} -> {compiler.process(key, **kw)})"
    )


@compiles(json_elements, "sqlite")
def _json_elements_sqlite(element: json_elements, compiler: Any, **kw: Any) -> str:
    document, key = element.clauses
    path = f"'$.' || json_quote({compiler.process(key, **kw)})"
    return f"json_each({compiler.process(document, **kw)}, {path})"


def _elements(attribute: Attribute, alias: str) -> Any:
    rows = json_elements(ScimUser.extra, literal(attribute.name))
    return rows.table_valued(column("value", JSON)).alias(alias)


def _with_urn(urn: str, attributes: AttributeMap) -> AttributeMap:
    """Every attribute by its short name and by its fully qualified name."""
    prefixed = {f"{urn.lower()}:{name}": target for name, target in attributes.items()}
    return {**attributes, **prefixed}


def _common(id_column: Any, external_id: Any, created: Any, modified: Any) -> AttributeMap:
    return {
        "id": Column(id_column, Kind.UUID),
        "externalid": Column(external_id, Kind.STRING),
        "meta.created": Column(created, Kind.DATETIME),
        "meta.lastmodified": Column(modified, Kind.DATETIME),
    }


def _kind(attribute: Attribute) -> Kind:
    if attribute.type == "boolean":
        return Kind.BOOLEAN
    if attribute.type == "binary":
        return Kind.BINARY
    return Kind.STRING if attribute.case_exact else Kind.TEXT


def _id_kind(attribute: Attribute) -> Kind:
    """An id compared as its definition says: only as rendered, or in any case too."""
    return Kind.UUID if attribute.case_exact else Kind.UUID_ANY_CASE


def _extra(attributes: tuple[Attribute, ...], *path: str) -> AttributeMap:
    """The attributes kept in `scim_users.extra` under `path`, read from the JSON."""
    found: AttributeMap = {}
    for attribute in attributes:
        key = attribute.name.lower()
        if attribute.multi_valued:
            found[key] = _extra_multi_valued(attribute)
        elif attribute.type != "complex":
            text = ScimUser.extra[(*path, attribute.name)].as_string()
            found[key] = Column(text, _kind(attribute))
    return found


def _extra_multi_valued(attribute: Attribute) -> MultiValued:
    element = _elements(attribute, f"extra_{attribute.name.lower()}")
    sub: dict[str, Column] = {}
    for sub_attribute in attribute.sub_attributes:
        value = element.c.value[sub_attribute.name]
        typed = value.as_boolean() if sub_attribute.type == "boolean" else value.as_string()
        sub[sub_attribute.name.lower()] = Column(typed, _kind(sub_attribute))
    return MultiValued(
        sub=sub,
        exists=lambda condition: select(literal(1)).select_from(element).where(condition).exists(),
        default_sub="value",
    )


def _schema_attribute(name: str) -> Attribute:
    found = USER_SCHEMA.attribute(name) or ENTERPRISE_SCHEMA.attribute(name)
    assert found is not None, name
    return found


_NAME = _schema_attribute("name")
_COLUMN_NAME_PARTS = {"formatted", "familyName", "givenName"}
_EXTRA_CORE = tuple(
    a
    for a in USER_SCHEMA.attributes
    if a.name
    in {
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "entitlements",
        "roles",
        "x509Certificates",
    }
)
_EXTRA_NAME = tuple(a for a in _NAME.sub_attributes if a.name not in _COLUMN_NAME_PARTS)
_EXTRA_ENTERPRISE = tuple(
    a for a in ENTERPRISE_SCHEMA.attributes if a.name in {"costCenter", "organization", "division"}
)

# What the IdP sees as meta.lastModified: the later of the SCIM record's and the person's
# change (a revocation by an admin moves it too).
USER_LAST_MODIFIED = case(
    (User.updated_at > ScimUser.updated_at, User.updated_at), else_=ScimUser.updated_at
)
USER_ACTIVE = and_(User.status != UserStatus.REVOKED, ScimUser.held_inactive.is_(False))


def _exists_where(*links: ColumnElement[bool]) -> Callable[[ColumnElement[bool]], Any]:
    """EXISTS over the child rows `links` join to the resource, for a condition on them."""

    def wrap(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        if isinstance(condition, False_):
            # Nothing can match (e.g. a value that is no id). Wrapped, SQLAlchemy folds the
            # WHERE to false and leaves the tables unjoined: a cartesian product.
            return condition
        return exists().where(*links, condition)

    return wrap


# Stands for one URN of a resource's `schemas` in a condition, which _schemas asks of each.
_SCHEMA_URN = column("scim_schema_urn", String)


def _schemas(*listed: tuple[str, ColumnElement[bool] | None]) -> MultiValued:
    """`schemas` as a multi-valued string (RFC 7644 section 3.4.2.2: `schemas eq
    "urn:…:enterprise:2.0:User"`): a condition on one URN holds when it holds for a URN the
    resource lists, each (URN, when it is listed; None: always)."""

    def exists(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        def on(urn: str) -> ColumnElement[bool]:
            def swap(element: Any, **_kw: Any) -> Any:
                return literal(urn, String) if element is _SCHEMA_URN else None

            return replacement_traverse(condition, {}, swap)

        return or_(*(on(urn) if when is None else and_(when, on(urn)) for urn, when in listed))

    return MultiValued(sub={"value": Column(_SCHEMA_URN, Kind.TEXT)}, exists=exists)


def _filled(expr: Any) -> ColumnElement[bool]:
    return and_(expr.is_not(None), expr != "")


# A User lists the enterprise extension when it has any of its attributes (as rendered by
# webhooks.scim_documents), the access end date included when the organisation keeps it there.
_HAS_ENTERPRISE = or_(
    _filled(ScimUser.employee_number),
    _filled(ScimUser.department),
    _filled(ScimUser.manager_id),
    ScimUser.extra[ENTERPRISE].as_string().is_not(None),
    and_(
        User.access_ends_at.is_not(None),
        func.lower(OrganisationSettings.scim_access_end_attribute).startswith(
            ENTERPRISE.lower() + ":", autoescape=True
        ),
    ),
)

# The common attributes are part of every base resource schema (RFC 7643 section 3.1), so
# the core URN names them too (`urn:…:core:2.0:Group:externalId`).
USER_ATTRIBUTES: AttributeMap = {
    **_with_urn(
        USER,
        {
            **_common(ScimUser.id, ScimUser.external_id, ScimUser.created_at, USER_LAST_MODIFIED),
            "schemas": _schemas((USER, None), (ENTERPRISE, _HAS_ENTERPRISE)),
            "username": Column(ScimUser.user_name_key, Kind.KEY),
            "displayname": Column(ScimUser.display_name, Kind.TEXT),
            "name.givenname": Column(ScimUser.given_name, Kind.TEXT),
            "name.familyname": Column(ScimUser.family_name, Kind.TEXT),
            "name.formatted": Column(ScimUser.formatted_name, Kind.TEXT),
            **{f"name.{k}": v for k, v in _extra(_EXTRA_NAME, "name").items()},
            "active": Column(USER_ACTIVE, Kind.BOOLEAN),
            "emails": MultiValued(
                sub={
                    "value": Column(ScimEmail.value_key, Kind.EMAIL),
                    "type": Column(ScimEmail.type, Kind.TEXT),
                    "primary": Column(ScimEmail.primary, Kind.BOOLEAN),
                },
                exists=_exists_where(
                    ScimEmail.organisation_id == ScimUser.organisation_id,
                    ScimEmail.scim_user_id == ScimUser.id,
                ),
            ),
            "groups": MultiValued(
                sub={
                    "value": Column(Team.id, _id_kind(GROUPS_VALUE)),
                    "display": Column(Team.name_key, Kind.KEY),
                },
                exists=_exists_where(
                    TeamMembership.user_id == ScimUser.user_id,
                    Team.id == TeamMembership.team_id,
                    Team.external_source == Source.SCIM,
                ),
            ),
            **_extra(_EXTRA_CORE),
        },
    ),
    **_with_urn(
        ENTERPRISE,
        {
            "employeenumber": Column(ScimUser.employee_number, Kind.TEXT),
            "department": Column(ScimUser.department, Kind.TEXT),
            "manager.value": Column(ScimUser.manager_id, _kind(MANAGER_VALUE)),
            "manager": Column(ScimUser.manager_id, _kind(MANAGER_VALUE)),
            **_extra(_EXTRA_ENTERPRISE, ENTERPRISE),
        },
    ),
}

GROUP_ATTRIBUTES: AttributeMap = {
    **_with_urn(
        GROUP,
        {
            **_common(Team.id, Team.external_id, Team.created_at, Team.updated_at),
            "schemas": _schemas((GROUP, None)),
            "displayname": Column(Team.name_key, Kind.KEY),
            "members": MultiValued(
                # every member is a user: `members[type eq "User"]` matches as a PATCH path does
                sub={
                    "value": Column(ScimUser.id, _id_kind(MEMBER_VALUE)),
                    "type": Column(literal_column("'User'", String), Kind.TEXT),
                },
                exists=_exists_where(
                    TeamMembership.team_id == Team.id, ScimUser.user_id == TeamMembership.user_id
                ),
            ),
        },
    ),
}


def _sort_key(target: Column) -> Any:
    """What a single-valued attribute sorts by: case-insensitive ones by their lower case."""
    return func.lower(target.expr, type_=String) if target.kind is Kind.TEXT else target.expr


def _first_email() -> Any:
    return (
        select(ScimEmail.value_key)
        .where(ScimEmail.scim_user_id == ScimUser.id)
        .order_by(ScimEmail.primary.is_(True).desc(), ScimEmail.position)
        .limit(1)
        .scalar_subquery()
    )


def _first_extra(attribute: Attribute) -> Any:
    """A multi-valued JSON attribute sorts by its primary value, else its first."""
    element = _elements(attribute, f"sort_{attribute.name.lower()}")
    of_primary = (
        select(element.c.value["value"].as_string())
        .select_from(element)
        .where(element.c.value["primary"].as_boolean().is_(True))
        .limit(1)
        .scalar_subquery()
    )
    first = ScimUser.extra[(attribute.name, 0, "value")].as_string()
    chosen = func.coalesce(of_primary, first)
    value = next(s for s in attribute.sub_attributes if s.name == "value")
    return chosen if value.case_exact else func.lower(chosen, type_=String)


def _sortable(attributes: AttributeMap, multi: dict[str, Any]) -> dict[str, Any]:
    """Every single-valued attribute of the map, and the multi-valued ones given."""
    keys = {name: _sort_key(t) for name, t in attributes.items() if isinstance(t, Column)}
    keys.update(multi)
    return keys


_MULTI_SORT = {"emails": _first_email()} | {
    a.name.lower(): _first_extra(a) for a in _EXTRA_CORE if a.multi_valued and a.name != "addresses"
}
_MULTI_SORT |= {f"{name}.value": key for name, key in _MULTI_SORT.items()}
USER_SORT = _sortable(USER_ATTRIBUTES, _with_urn(USER, _MULTI_SORT))
GROUP_SORT = _sortable(GROUP_ATTRIBUTES, {})


@dataclass(frozen=True)
class Page:
    """One page of a search: 1-based start, the total that matched, the rows."""

    total: int
    start: int
    items: Sequence[Any]


@dataclass(frozen=True)
class Search:
    filter: str | None = None
    start: int = 1
    count: int = 100
    sort_by: str | None = None
    descending: bool = False


# Past any real page, and within a 64-bit OFFSET: a later start reads the same empty page
# (the answer still says the startIndex asked, RFC 7644 section 3.4.2.4).
_LAST_START = 2**31

_ORGANISATION = "scim_organisation_id"
_OFFSET = "scim_offset"
_LIMIT = "scim_limit"


@dataclass(frozen=True)
class _Resource:
    """What a search of one resource type needs: its organisation's rows as a query (built
    once per dialect, the organisation a bound parameter), its filters, sort keys, tie
    breakers and how a page is read."""

    name: str
    base: Callable[[str], Select[Any]]
    filters: filters.ShapeCache
    sortable: dict[str, Any]
    tie: tuple[Any, Any]
    read: Callable[[Session, Select[Any], dict[str, Any]], Sequence[Any]]


def _entities(session: Session, query: Select[Any], parameters: dict[str, Any]) -> list[Any]:
    return list(session.scalars(query, parameters).unique())


def _user_base(dialect: str) -> Select[Any]:
    return user_query(dialect).where(ScimUser.organisation_id == bindparam(_ORGANISATION))


def _group_base(_dialect: str) -> Select[Any]:
    return select(Team).where(
        Team.organisation_id == bindparam(_ORGANISATION), Team.external_source == Source.SCIM
    )


_USERS = _Resource(
    "users",
    _user_base,
    filters.ShapeCache(USER_ATTRIBUTES),
    USER_SORT,
    (ScimUser.created_at, ScimUser.id),
    user_records,
)
_GROUPS = _Resource(
    "groups",
    _group_base,
    filters.ShapeCache(GROUP_ATTRIBUTES),
    GROUP_SORT,
    (Team.created_at, Team.id),
    _entities,
)


def search_users(session: Session, organisation_id: uuid.UUID, search: Search) -> Page:
    """A page of user records (models.queries.scim_records), one query."""
    return _page(session, organisation_id, search, _USERS)


def search_groups(session: Session, organisation_id: uuid.UUID, search: Search) -> Page:
    return _page(session, organisation_id, search, _GROUPS)


def users_sort_by(sort_by: str) -> bool:
    return sort_by.lower() in USER_SORT


def groups_sort_by(sort_by: str) -> bool:
    return sort_by.lower() in GROUP_SORT


def sorted_by_every_type(sort_by: str | None) -> bool:
    return sort_by is not None and users_sort_by(sort_by) and groups_sort_by(sort_by)


def search_merged(session: Session, organisation_id: uuid.UUID, search: Search) -> Page:
    """A root search's page sorted by an attribute users and groups both have, in one order
    across both (RFC 7644 section 3.4.2.3), ties in order of creation, then id; its items are
    (resource type name, record) pairs. One statement orders the keys of both tables (no
    more than a page's rows leave the database), a second reads the page's records."""
    dialect = session.get_bind().dialect.name
    if search.sort_by is None:
        raise ValueError("a merged order needs a sortBy")
    keyed, parameters = _keyed_searches(dialect, search.filter, search.sort_by.lower())
    merged = union_all(*keyed).subquery()
    ordering = [*_ordered_by(merged.c.sort_key, search.descending), merged.c.created, merged.c.id]
    rows: list[Any] = []
    if search.count > 0:
        offset = min(search.start, _LAST_START) - 1
        page = select(merged.c.resource, merged.c.id).order_by(*ordering)
        page = page.offset(offset).limit(search.count)
        rows = list(session.execute(page, {**parameters, _ORGANISATION: organisation_id}))
    counted = select(func.count()).select_from(merged)
    total = session.execute(counted, {**parameters, _ORGANISATION: organisation_id}).scalar()
    return Page(total or 0, search.start, _records_in_order(session, organisation_id, rows))


def _keyed_searches(
    dialect: str, filter_text: str | None, sort_by: str
) -> tuple[list[Select[Any]], dict[str, Any]]:
    """Each resource type's matching rows as (resource, id, sort key, created), its filter's
    parameters renamed apart; a type the filter names no attribute of is left out."""
    keyed: list[Select[Any]] = []
    parameters: dict[str, Any] = {}
    refused: InvalidFilter | None = None
    for resource in (_USERS, _GROUPS):
        query = resource.base(dialect)
        if filter_text is not None:
            try:
                translation = resource.filters.to_sql(filter_text)
            except InvalidFilter as error:
                refused = error
                continue
            condition, bound = _renamed_apart(resource.name, translation)
            query = query.where(condition)
            parameters.update(bound)
        columns = (
            literal_column(f"'{resource.name}'", String).label("resource"),
            resource.tie[1].label("id"),
            resource.sortable[sort_by].label("sort_key"),
            resource.tie[0].label("created"),
        )
        keyed.append(query.with_only_columns(*columns, maintain_column_froms=True))
    if not keyed and refused is not None:
        raise refused
    return keyed, parameters


def _renamed_apart(
    prefix: str, translation: filters.Translation
) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """A shared translation's parameters are named by position alone: both types' would
    clash in one statement (and a string binds by each type's own case rule)."""
    names = translation.parameters

    def rename(element: Any, **_kw: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in names:
            return bindparam(f"{prefix}_{element.key}", type_=element.type)
        return None

    condition = replacement_traverse(translation.condition, {}, rename)
    return condition, {f"{prefix}_{key}": value for key, value in names.items()}


def _records_in_order(
    session: Session, organisation_id: uuid.UUID, rows: Sequence[Any]
) -> list[tuple[str, Any]]:
    dialect = session.get_bind().dialect.name
    user_ids = [row.id for row in rows if row.resource == _USERS.name]
    group_ids = [row.id for row in rows if row.resource == _GROUPS.name]
    found: dict[tuple[str, uuid.UUID], Any] = {}
    if user_ids:
        query = _user_base(dialect).where(ScimUser.id.in_(user_ids))
        for record in user_records(session, query, {_ORGANISATION: organisation_id}):
            found[(_USERS.name, uuid.UUID(record.id))] = record
    if group_ids:
        for team in session.scalars(select(Team).where(Team.id.in_(group_ids))):
            found[(_GROUPS.name, team.id)] = team
    return [(row.resource, found[(row.resource, row.id)]) for row in rows]


def sort_order(sortable: dict[str, Any], sort_by: str | None, descending: bool) -> list[Any]:
    """ORDER BY for sortBy (RFC 7644 section 3.4.2.3): resources without a value come last
    when ascending and first when descending; an attribute that cannot sort is invalidValue."""
    if sort_by is None:
        return []
    key = sortable.get(sort_by.lower())
    if key is None:
        raise InvalidValue(f"sortBy {sort_by!r} is not an attribute this server sorts by")
    return _ordered_by(key, descending)


def _ordered_by(key: Any, descending: bool) -> list[Any]:
    if isinstance(key.type, String) and not isinstance(key.type, Enum):
        key = filters.code_points(key)  # the database's collation would decide otherwise
    if descending:
        return [key.is_(None).desc(), key.desc()]
    return [key.is_(None), key.asc()]


@dataclass(frozen=True)
class _Statements:
    rows: Select[Any]
    count: Select[Any]


def _statements(
    resource: _Resource,
    dialect: str,
    condition: ColumnElement[bool] | None,
    sort_by: str | None,
    descending: bool,
) -> _Statements:
    """A page's query (offset and limit bound) and the count of everything it matches."""
    ordering = sort_order(resource.sortable, sort_by, descending)
    ordering = [*ordering, *resource.tie] if ordering else [resource.tie[1]]
    query = resource.base(dialect)
    if condition is not None:
        query = query.where(condition)
    rows = query.order_by(*ordering).offset(bindparam(_OFFSET)).limit(bindparam(_LIMIT))
    matching = query.with_only_columns(resource.tie[1], maintain_column_froms=True)
    counted = select(func.count()).select_from(matching.order_by(None).subquery())
    return _Statements(rows, counted)


def _prepared(statements: _Statements) -> _Statements:
    """A search of a shared shape runs prepared (models.db.PREPARED): its filter compares
    strings for equality or order, never with LIKE, so a generic plan serves it."""
    options = {PREPARED: True}
    return _Statements(
        statements.rows.execution_options(**options), statements.count.execution_options(**options)
    )


class _StatementCache:
    """The statements of the searches seen lately, by resource, dialect, filter shape (see
    filters.ShapeCache) and sort: running the same statement object spares building it,
    SQLAlchemy's cache key for it and the adaptation of its result to new columns."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], _Statements] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Callable[[], _Statements]) -> _Statements:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        built = build()
        with self._lock:
            self._items[key] = built
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return built


_STATEMENTS = _StatementCache(512)


def _page(
    session: Session, organisation_id: uuid.UUID, search: Search, resource: _Resource
) -> Page:
    """A page in sortBy order, ties (and no sortBy) in order of creation, then id."""
    dialect = session.get_bind().dialect.name
    sort_by = search.sort_by.lower() if search.sort_by is not None else None
    parameters: dict[str, Any] = {_ORGANISATION: organisation_id}
    if search.filter is None:
        key: tuple[Any, ...] | None = (resource.name, dialect, None, sort_by, search.descending)
        condition = None
    else:
        translation = resource.filters.to_sql(search.filter)
        parameters.update(translation.parameters)
        condition = translation.condition
        key = (resource.name, dialect, translation.shape, sort_by, search.descending)
        if translation.shape is None:
            key = None  # translated for this filter alone

    def build() -> _Statements:
        return _statements(resource, dialect, condition, sort_by, search.descending)

    statements = build() if key is None else _STATEMENTS.get(key, lambda: _prepared(build()))
    rows: Sequence[Any] = []
    if search.count > 0:
        page = {**parameters, _OFFSET: min(search.start, _LAST_START) - 1, _LIMIT: search.count}
        rows = resource.read(session, statements.rows, page)
    if search.start == 1 and search.count > 0 and len(rows) < search.count:
        total = len(rows)  # the whole result fits in this page: no COUNT query needed
    else:
        total = session.execute(statements.count, parameters).scalar() or 0
    return Page(total=total, start=search.start, items=rows)


def members_of(session: Session, team_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[MemberRef]]:
    """The SCIM-provisioned members of each of these teams, in one query. The ids come back
    as text, rendered by the database: a group can have 100,000 members, and a UUID object
    for each member and its team cost more than the rest of the read."""
    if not team_ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        select(id_text(dialect, TeamMembership.team_id), id_text(dialect, ScimUser.id))
        .join(ScimUser, ScimUser.user_id == TeamMembership.user_id)
        .where(TeamMembership.team_id.in_(team_ids))
        .order_by(ScimUser.id)
    )
    found: dict[str, list[MemberRef]] = defaultdict(list)
    for team_id, scim_id in rows:
        found[team_id].append(MemberRef(scim_id))
    return {uuid.UUID(team_id): members for team_id, members in found.items()}


EMPTY_MEMBERS_DIGEST = hashlib.md5(b"", usedforsecurity=False).hexdigest()


def members_digests(session: Session, team_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each team's SCIM members as one digest (md5 of their ids in order, comma-joined), for a
    group's version without reading its members out: PostgreSQL folds them itself; elsewhere
    the ids come back as text, one team at a time (no UUID object per member)."""
    if not team_ids:
        return {}
    member_id = cast(ScimUser.id, String)
    if session.get_bind().dialect.name == "postgresql":
        folded = func.md5(func.string_agg(member_id, aggregate_order_by(literal(","), member_id)))
        query = select(TeamMembership.team_id, folded).group_by(TeamMembership.team_id)
        return {team_id: digest for team_id, digest in _member_rows(query, team_ids, session)}
    digests = {}
    for team_id in team_ids:
        ids = _member_rows(select(member_id).order_by(member_id), [team_id], session).scalars()
        digests[team_id] = _md5(",".join(ids))
    return digests


def _member_rows(query: Any, team_ids: Sequence[uuid.UUID], session: Session) -> Any:
    return session.execute(
        query.select_from(TeamMembership)
        .join(ScimUser, ScimUser.user_id == TeamMembership.user_id)
        .where(TeamMembership.team_id.in_(team_ids))
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
