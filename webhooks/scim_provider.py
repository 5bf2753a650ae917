"""The SCIM service provider over the domain: each function is one SCIM request's work
(read, check the version, map, call the domain operation) and answers a SCIM document.
The web layer authenticates, calls one of these, commits and responds."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from connectors.scim import casting
from connectors.scim import schemas as schemas_of
from connectors.scim.errors import InvalidFilter, InvalidSyntax, InvalidValue
from connectors.scim.member_patch import member_steps
from connectors.scim.patch import apply_patch
from connectors.scim.projection import Projection, project
from connectors.scim.schemas import (
    GROUP_KIND,
    LIST_RESPONSE,
    MAX_RESULTS,
    SCHEMAS,
    USER_KIND,
    ResourceKind,
    service_provider_config,
)
from models import change_writes
from models.actions import scim as scim_actions
from models.actor import Actor
from models.db import prepare_transaction
from models.entities import Organisation, Team
from models.errors import NotFound, PreconditionFailed
from models.numbers import INTEGER_TEXT
from models.queries import scim as queries
from models.queries import scim_records as records
from webhooks import scim_documents

WITHOUT_MEMBERS = Projection(excluded=("members",))  # a group read for its version alone


@dataclass(frozen=True)
class Context:
    """Who is asking (the token's organisation, as an actor) and where the API lives."""

    organisation_id: uuid.UUID
    actor: Actor
    base_url: str


@dataclass(frozen=True)
class Preconditions:
    """The conditional headers of a write."""

    if_match: str | None = None
    if_none_match: str | None = None


@dataclass(frozen=True)
class Listing:
    search: queries.Search
    projection: Projection


# --- discovery -------------------------------------------------------------------------


def service_provider(ctx: Context, docs_url: str) -> dict[str, Any]:
    return service_provider_config(ctx.base_url, docs_url)


def user_kind(session: Session, ctx: Context) -> ResourceKind:
    """The User resource type as this organisation has it (its end-date extension, if any)."""
    return schemas_of.user_kind(_end_attribute(session, ctx))


def resource_types(session: Session, ctx: Context) -> dict[str, Any]:
    return _list([kind.document(ctx.base_url) for kind in _kinds(session, ctx)])


def resource_type(session: Session, ctx: Context, name: str) -> dict[str, Any]:
    kind = next((k for k in _kinds(session, ctx) if k.name.lower() == name.lower()), None)
    if kind is None:
        raise NotFound(f"resource type {name} not found")
    return kind.document(ctx.base_url)


def schemas(session: Session, ctx: Context) -> dict[str, Any]:
    return _list([schema.document(ctx.base_url) for schema in _schemas(session, ctx)])


def schema(session: Session, ctx: Context, schema_id: str) -> dict[str, Any]:
    wanted = schema_id.lower()
    found = next((s for s in _schemas(session, ctx) if s.id.lower() == wanted), None)
    if found is None:
        raise NotFound(f"schema {schema_id} not found")
    return found.document(ctx.base_url)


def _kinds(session: Session, ctx: Context) -> tuple[ResourceKind, ...]:
    return (user_kind(session, ctx), GROUP_KIND)


def _schemas(session: Session, ctx: Context) -> tuple[schemas_of.Schema, ...]:
    """The published schemas and the organisation's own end-date extension, if it has one."""
    extra = [s for s in user_kind(session, ctx).extensions if s not in SCHEMAS]
    return (*SCHEMAS, *extra)


# --- users -----------------------------------------------------------------------------


def list_users(session: Session, ctx: Context, listing: Listing) -> dict[str, Any]:
    page = queries.search_users(session, ctx.organisation_id, listing.search)
    documents = _render_users(ctx, page.items)
    return _list(documents, page, listing.projection, _kind_of(page.items))


def get_user(session: Session, ctx: Context, scim_id: str) -> tuple[dict[str, Any], ResourceKind]:
    """The user's document and the User resource type it is projected by."""
    record = records.user_by_id(session, ctx.organisation_id, scim_id)
    return scim_documents.read_user_document(record, ctx.base_url), _kind_of([record])


def search_all(session: Session, ctx: Context, listing: Listing) -> dict[str, Any]:
    """A search at the root (RFC 7644 section 3.4.3): users first, then groups, unless sorted
    by an attribute both have (then one order across both). A resource type that cannot sort
    by `sortBy` has no value for it, so its resources come after the others when ascending
    and before them when descending (RFC 7644 section 3.4.2.3)."""
    search = listing.search
    if queries.sorted_by_every_type(search.sort_by):
        return _search_merged(session, ctx, listing)
    parts = _root_parts(search)
    pages: list[queries.Page] = []
    start, count, before = search.start, search.count, 0
    for run, sort_by in parts:
        wanted = replace(search, start=max(start - before, 1), count=count, sort_by=sort_by)
        page = _or_empty(lambda run=run, wanted=wanted: run(session, ctx.organisation_id, wanted))
        pages.append(page)
        count = max(count - len(page.items), 0)
        before += max(page.total, 0)
    if all(page.total < 0 for page in pages):
        raise InvalidFilter(f"the filter {search.filter!r} applies to no resource type")
    documents: list[dict[str, Any]] = []
    for (run, _sort_by), page in zip(parts, pages, strict=True):
        documents.extend(_root_documents(session, ctx, listing, run, page.items))
    return _list(documents, queries.Page(before, search.start, documents))


def _search_merged(session: Session, ctx: Context, listing: Listing) -> dict[str, Any]:
    """A root search sorted by an attribute both resource types have: one order across them."""
    page = queries.search_merged(session, ctx.organisation_id, listing.search)
    users = [item for name, item in page.items if name == "users"]
    groups = [item for name, item in page.items if name == "groups"]
    by_type = {
        "users": iter(_root_documents(session, ctx, listing, queries.search_users, users)),
        "groups": iter(_root_documents(session, ctx, listing, queries.search_groups, groups)),
    }
    documents = [next(by_type[name]) for name, _item in page.items]
    return _list(documents, queries.Page(page.total, page.start, documents))


_RootSearch = Callable[[Session, uuid.UUID, queries.Search], queries.Page]


def _root_parts(search: queries.Search) -> list[tuple[_RootSearch, str | None]]:
    """Each resource type's search, in the order its resources are listed, and the sortBy
    it runs with (None: it has no such attribute)."""
    if search.sort_by is None:
        return [(queries.search_users, None), (queries.search_groups, None)]
    sorted_users = queries.users_sort_by(search.sort_by)
    sorted_groups = queries.groups_sort_by(search.sort_by)
    if not (sorted_users or sorted_groups):
        raise InvalidValue(f"sortBy {search.sort_by!r} is not an attribute this server sorts by")
    users = (queries.search_users, search.sort_by if sorted_users else None)
    groups = (queries.search_groups, search.sort_by if sorted_groups else None)
    if sorted_users and not sorted_groups and search.descending:
        return [groups, users]
    if sorted_groups and not sorted_users and not search.descending:
        return [groups, users]
    return [users, groups]


def _root_documents(
    session: Session, ctx: Context, listing: Listing, run: _RootSearch, items: Any
) -> list[dict[str, Any]]:
    if run is queries.search_users:
        kind = _kind_of(items)
        return [project(d, listing.projection, kind) for d in _render_users(ctx, items)]
    groups = _render_groups(session, ctx, items, listing.projection)
    return [project(d, listing.projection, GROUP_KIND) for d in groups]


def _or_empty(run: Any) -> queries.Page:
    try:
        page: queries.Page = run()
    except InvalidFilter:
        return queries.Page(-1, 1, [])
    return page


def create_user(session: Session, ctx: Context, body: Any) -> dict[str, Any]:
    # A user's writes run prepared: their statements have fixed shapes (a group's have
    # member lists of any length).
    prepare_transaction(session)
    scim_user, attribute = scim_actions.create_pushed_user(
        session,
        ctx.organisation_id,
        fields=casting.scim_to_user_fields(body, None),
        access_end_by=lambda attribute: casting.access_end(body, attribute),
        actor=ctx.actor,
    )
    record = records.record_of(scim_user, attribute)  # no organisation entity to read it from
    return scim_documents.user_to_scim(record, ctx.base_url)


def replace_user(
    session: Session, ctx: Context, scim_id: str, body: Any, conditions: Preconditions
) -> dict[str, Any]:
    prepare_transaction(session)
    locked = _locked_user(session, ctx, scim_id)
    check_tag(lambda: user_document(session, ctx, locked)["meta"]["version"], conditions)
    fields = casting.scim_to_user_fields(body, locked.access_end_attribute)
    scim_actions.replace_scim_user(
        session, scim_user=locked.scim_user, fields=fields, actor=ctx.actor
    )
    return user_document(session, ctx, locked)


def patch_user(
    session: Session, ctx: Context, scim_id: str, body: Any, conditions: Preconditions
) -> dict[str, Any]:
    prepare_transaction(session)
    locked = _locked_user(session, ctx, scim_id)
    # The document is rendered whole (meta, version) once, for the answer: the operations
    # apply to its content alone, rendered for them and changed in place, and its version
    # is worked out only when a condition asks for it.
    attribute = locked.access_end_attribute
    record = records.record_of(locked.scim_user, attribute, locked.groups)
    # The operations change the document in place: the JSON values in it must be copies,
    # not the entity's own, or the change is made to the loaded value and never seen
    # (neither written nor audited).
    current = scim_documents.user_content(
        replace(record, extra=copy.deepcopy(record.extra)), ctx.base_url
    )
    check_tag(lambda: casting.version_of(current), conditions)
    patched = apply_patch(
        current, operations(body), USER_KIND, passthrough=(attribute,), in_place=True
    )
    fields = casting.scim_to_user_fields(patched, attribute)
    scim_actions.replace_scim_user(
        session, scim_user=locked.scim_user, fields=fields, actor=ctx.actor
    )
    return user_document(session, ctx, locked)


def delete_user(session: Session, ctx: Context, scim_id: str, conditions: Preconditions) -> None:
    prepare_transaction(session)
    locked = scim_actions.lock_scim_user(session, ctx.organisation_id, scim_id, leaving=True)
    check_tag(lambda: user_document(session, ctx, locked)["meta"]["version"], conditions)
    scim_actions.delete_scim_user(session, scim_user=locked.scim_user, actor=ctx.actor)


def user_document(
    session: Session, ctx: Context, locked: scim_actions.LockedUser
) -> dict[str, Any]:
    """The document of a user held as an entity (being written)."""
    change_writes.flush_changes(session, scim_actions.WRITTEN_ROWS)
    record = records.record_of(locked.scim_user, locked.access_end_attribute, locked.groups)
    return scim_documents.user_to_scim(record, ctx.base_url)


def _locked_user(session: Session, ctx: Context, scim_id: str) -> scim_actions.LockedUser:
    return scim_actions.lock_scim_user(session, ctx.organisation_id, scim_id)


def _render_users(ctx: Context, users: Sequence[records.UserRecord]) -> list[dict[str, Any]]:
    """Whole resources (their version covers every attribute); projections come after."""
    return [scim_documents.read_user_document(record, ctx.base_url) for record in users]


def _kind_of(users: Sequence[records.UserRecord]) -> ResourceKind:
    """The User resource type of the organisation these records come from (its end-date
    attribute comes with each record; with no record there is nothing to project)."""
    return schemas_of.user_kind(users[0].access_end_attribute) if users else USER_KIND


def _end_attribute(session: Session, ctx: Context) -> str:
    """The attribute this organisation's IdP sends a person's access end date in."""
    return session.get_one(Organisation, ctx.organisation_id).settings.scim_access_end_attribute


# --- groups ----------------------------------------------------------------------------


def list_groups(session: Session, ctx: Context, listing: Listing) -> dict[str, Any]:
    page = queries.search_groups(session, ctx.organisation_id, listing.search)
    documents = _render_groups(session, ctx, page.items, listing.projection)
    return _list(documents, page, listing.projection, GROUP_KIND)


def get_group(
    session: Session, ctx: Context, group_id: str, projection: Projection | None = None
) -> dict[str, Any]:
    return _render_groups(session, ctx, [_group(session, ctx, group_id)], projection)[0]


def create_group(session: Session, ctx: Context, body: Any) -> dict[str, Any]:
    fields = casting.scim_to_group_fields(body)
    team = scim_actions.create_scim_group(
        session,
        organisation=session.get_one(Organisation, ctx.organisation_id),
        fields=fields,
        actor=ctx.actor,
    )
    return group_document(session, ctx, team)


def replace_group(
    session: Session, ctx: Context, group_id: str, body: Any, conditions: Preconditions
) -> dict[str, Any]:
    team = _group(session, ctx, group_id, for_update=True)
    check_version(group_document(session, ctx, team), conditions)
    fields = casting.scim_to_group_fields(body)
    scim_actions.replace_scim_group(session, team=team, fields=fields, actor=ctx.actor)
    return group_document(session, ctx, team)


def patch_group(
    session: Session,
    ctx: Context,
    group_id: str,
    body: Any,
    conditions: Preconditions,
    projection: Projection | None = None,
) -> dict[str, Any]:
    """The group after the operations, as `projection` shows it. Member adds and removes
    alone (Okta's and Entra ID's membership pushes) are applied from the members they name:
    neither they nor the answer read the others when the projection leaves them out."""
    team = _group(session, ctx, group_id, for_update=True)
    steps = member_steps(operations(body))
    if steps is None:
        current = group_document(session, ctx, team)
        check_version(current, conditions)
        # Rendered for this PATCH alone: the operations change it in place (dropped on an
        # error) rather than a copy, which for a group of 1,000 members was a sixth of it.
        patched = apply_patch(current, operations(body), GROUP_KIND, in_place=True)
        fields = casting.scim_to_group_fields(patched)
        scim_actions.replace_scim_group(session, team=team, fields=fields, actor=ctx.actor)
    else:
        check_tag(
            lambda: group_document(session, ctx, team, WITHOUT_MEMBERS)["meta"]["version"],
            conditions,
        )
        scim_actions.patch_scim_group_members(session, team=team, steps=steps, actor=ctx.actor)
    return group_document(session, ctx, team, projection)


def delete_group(session: Session, ctx: Context, group_id: str, conditions: Preconditions) -> None:
    team = _group(session, ctx, group_id, for_update=True)
    check_version(group_document(session, ctx, team), conditions)
    scim_actions.delete_scim_group(session, team=team, actor=ctx.actor)


def group_document(
    session: Session, ctx: Context, team: Team, projection: Projection | None = None
) -> dict[str, Any]:
    session.flush()
    return _render_groups(session, ctx, [team], projection)[0]


def _group(session: Session, ctx: Context, group_id: str, *, for_update: bool = False) -> Team:
    return scim_actions.get_scim_group(
        session, ctx.organisation_id, group_id, for_update=for_update
    )


def _render_groups(
    session: Session, ctx: Context, teams: Any, projection: Projection | None = None
) -> list[dict[str, Any]]:
    """Whole resources, less their members when the projection drops them (a group can
    have 100,000): the version covers the members by a digest the database computes, so a
    version read with excludedAttributes=members matches the whole resource's."""
    team_ids = [t.id for t in teams]
    digests = queries.members_digests(session, team_ids)
    members = queries.members_of(session, team_ids) if _keeps_members(projection) else None
    return [
        scim_documents.team_to_group(
            team,
            None if members is None else members.get(team.id, []),
            digests.get(team.id, queries.EMPTY_MEMBERS_DIGEST),
            ctx.base_url,
        )
        for team in teams
    ]


def _keeps_members(projection: Projection | None) -> bool:
    """Whether the projection returns members: asked of the projection itself, on a probe."""
    if not projection:
        return True
    probe = {"schemas": [GROUP_KIND.schema.id], "id": "", "members": [{"value": ""}]}
    return "members" in project(probe, projection, GROUP_KIND)


# --- shared ----------------------------------------------------------------------------


def operations(body: Any) -> Any:
    if not isinstance(body, dict):
        raise InvalidSyntax("a PatchOp body must be a JSON object")
    casting.check_schemas(body, schemas_of.PATCH_OP)
    found = next((v for k, v in body.items() if str(k).lower() == "operations"), None)
    if found is None:
        raise InvalidSyntax("a PatchOp body needs Operations")
    return found


def check_version(document: dict[str, Any], conditions: Preconditions) -> None:
    """Before a write (RFC 7232 section 3): If-Match must name the current version and
    If-None-Match must not (`*` matches any existing resource); 412 otherwise."""
    check_tag(lambda: document["meta"]["version"], conditions)


def check_tag(version: Callable[[], str], conditions: Preconditions) -> None:
    """check_version with the current version worked out only when a condition needs it."""
    if_match, if_none_match = conditions.if_match, conditions.if_none_match
    if (
        if_match is not None
        and if_match.strip() != "*"
        and _bare(version()) not in {_bare(tag) for tag in if_match.split(",")}
    ):
        raise PreconditionFailed("the resource changed since that version (If-Match)")
    if if_none_match and (
        if_none_match.strip() == "*"
        or _bare(version()) in {_bare(tag) for tag in if_none_match.split(",")}
    ):
        raise PreconditionFailed("the resource exists in that version (If-None-Match)")


def matches_version(document: dict[str, Any], if_none_match: str | None) -> bool:
    """If-None-Match: True when the caller already holds the current version."""
    if not if_none_match:
        return False
    current = _bare(document["meta"]["version"])
    return if_none_match.strip() == "*" or current in {
        _bare(tag) for tag in if_none_match.split(",")
    }


def _bare(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def _list(
    documents: list[dict[str, Any]],
    page: queries.Page | None = None,
    projection: Projection | None = None,
    kind: ResourceKind | None = None,
) -> dict[str, Any]:
    if projection is not None and kind is not None:
        documents = [project(d, projection, kind) for d in documents]
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": page.total if page else len(documents),
        "startIndex": page.start if page else 1,
        "itemsPerPage": len(documents),
        "Resources": documents,
    }


def listing(
    *,
    filter_text: str | None,
    start_index: Any,
    count: Any,
    sort_by: Any,
    sort_order: Any,
    attributes: Any,
    excluded: Any,
) -> Listing:
    """The paging, sorting and projection parameters, from a query string or a SearchRequest."""
    start = _integer(start_index, "startIndex", 1)
    size = _integer(count, "count", 100)
    order = (_text(sort_order, "sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidValue("sortOrder must be ascending or descending")
    search = queries.Search(
        filter=filter_text if filter_text not in (None, "") else None,
        start=max(start, 1),
        count=min(max(size, 0), MAX_RESULTS),
        sort_by=_text(sort_by, "sortBy"),
        descending=order == "descending",
    )
    return Listing(search, projection_of(attributes, excluded))


def projection_of(attributes: Any, excluded: Any) -> Projection:
    """The attributes or excludedAttributes parameter (RFC 7644 section 3.9: "mutually
    exclusive"; both at once is invalidValue, as scim2-server answers)."""
    projection = Projection(_attribute_list(attributes), _attribute_list(excluded))
    if projection.attributes and projection.excluded:
        raise InvalidValue("attributes and excludedAttributes are mutually exclusive")
    return projection


def _text(value: Any, name: str) -> str | None:
    """A SearchRequest's string parameter (sortBy, sortOrder); a query string's is one always."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name} must be a string")
    return value


def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidValue(f"{name} must be an integer")  # 1.5 is not 1
    if isinstance(value, str) and not INTEGER_TEXT.fullmatch(value):
        # As in a query string (webhooks.body.integer_text): int() reads " 5", "1_0" and
        # other scripts' digits.
        raise InvalidValue(f"{name} must be an integer in ASCII digits")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} must be an integer") from None


def _attribute_list(value: Any) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidValue("attributes must be a comma-separated list of attribute names")
    return tuple(i.strip().lower() for i in items if i.strip())
