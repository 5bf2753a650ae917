"""SCIM reads: the explicit attribute maps from SCIM names to columns, and the paged
searches that run a translated filter in the database."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from connectors.scim import filters
from connectors.scim.casting import MemberRef
from connectors.scim.filters import AttributeMap, Column, Kind, MultiValued
from connectors.scim.schemas import ENTERPRISE, GROUP, USER
from models.entities import ScimEmail, ScimUser, Team, TeamMembership, User
from models.enums import Source, UserStatus


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


USER_ATTRIBUTES: AttributeMap = {
    **_common(ScimUser.id, ScimUser.external_id, ScimUser.created_at, ScimUser.updated_at),
    **_with_urn(
        USER,
        {
            "username": Column(ScimUser.user_name_key, Kind.KEY),
            "displayname": Column(ScimUser.display_name, Kind.TEXT),
            "name.givenname": Column(ScimUser.given_name, Kind.TEXT),
            "name.familyname": Column(ScimUser.family_name, Kind.TEXT),
            "name.formatted": Column(ScimUser.formatted_name, Kind.TEXT),
            "active": Column(
                and_(User.status != UserStatus.REVOKED, ScimUser.held_inactive.is_(False)),
                Kind.BOOLEAN,
            ),
            "emails": MultiValued(
                sub={
                    "value": Column(ScimEmail.value_key, Kind.KEY),
                    "type": Column(ScimEmail.type, Kind.TEXT),
                    "primary": Column(ScimEmail.primary, Kind.BOOLEAN),
                },
                exists=lambda condition: exists().where(
                    ScimEmail.organisation_id == ScimUser.organisation_id,
                    ScimEmail.scim_user_id == ScimUser.id,
                    condition,
                ),
            ),
            "groups": MultiValued(
                sub={
                    "value": Column(Team.id, Kind.UUID),
                    "display": Column(Team.name_key, Kind.KEY),
                },
                exists=lambda condition: exists().where(
                    TeamMembership.user_id == ScimUser.user_id,
                    Team.id == TeamMembership.team_id,
                    Team.external_source == Source.SCIM,
                    condition,
                ),
            ),
        },
    ),
    **_with_urn(
        ENTERPRISE,
        {
            "employeenumber": Column(ScimUser.employee_number, Kind.STRING),
            "department": Column(ScimUser.department, Kind.TEXT),
            "manager.value": Column(ScimUser.manager_id, Kind.STRING),
            "manager": Column(ScimUser.manager_id, Kind.STRING),
        },
    ),
}

GROUP_ATTRIBUTES: AttributeMap = {
    **_common(Team.id, Team.external_id, Team.created_at, Team.updated_at),
    **_with_urn(
        GROUP,
        {
            "displayname": Column(Team.name_key, Kind.KEY),
            "members": MultiValued(
                sub={"value": Column(ScimUser.id, Kind.UUID)},
                exists=lambda condition: exists().where(
                    TeamMembership.team_id == Team.id,
                    ScimUser.user_id == TeamMembership.user_id,
                    condition,
                ),
            ),
        },
    ),
}

USER_SORT = {
    "id": ScimUser.id,
    "username": ScimUser.user_name_key,
    "externalid": ScimUser.external_id,
    "displayname": ScimUser.display_name,
    "name.givenname": ScimUser.given_name,
    "name.familyname": ScimUser.family_name,
    "meta.created": ScimUser.created_at,
    "meta.lastmodified": ScimUser.updated_at,
}
GROUP_SORT = {
    "id": Team.id,
    "displayname": Team.name_key,
    "externalid": Team.external_id,
    "meta.created": Team.created_at,
    "meta.lastmodified": Team.updated_at,
}


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


def search_users(session: Session, organisation_id: uuid.UUID, search: Search) -> Page:
    query = (
        select(ScimUser)
        .join(User, User.id == ScimUser.user_id)
        .options(
            contains_eager(ScimUser.user),
            joinedload(ScimUser.emails),
            joinedload(ScimUser.groups),
        )
        .where(ScimUser.organisation_id == organisation_id)
    )
    return _page(session, query, search, USER_ATTRIBUTES, USER_SORT, ScimUser.id)


def search_groups(session: Session, organisation_id: uuid.UUID, search: Search) -> Page:
    query = select(Team).where(
        Team.organisation_id == organisation_id, Team.external_source == Source.SCIM
    )
    return _page(session, query, search, GROUP_ATTRIBUTES, GROUP_SORT, Team.id)


def _page(
    session: Session,
    query: Select[Any],
    search: Search,
    attributes: AttributeMap,
    sortable: dict[str, Any],
    default_order: Any,
) -> Page:
    if search.filter is not None:
        condition: ColumnElement[bool] = filters.to_sql(filters.parse(search.filter), attributes)
        query = query.where(condition)
    order = sortable.get((search.sort_by or "").lower().removeprefix(f"{USER.lower()}:"))
    ordering = [] if order is None else [order.desc() if search.descending else order.asc()]
    rows: list[Any] = []
    if search.count > 0:
        page = query.order_by(*ordering, default_order).offset(search.start - 1)
        rows = list(session.scalars(page.limit(search.count)).unique())
    if search.start == 1 and search.count > 0 and len(rows) < search.count:
        total = len(rows)  # the whole result fits in this page: no COUNT query needed
    else:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = session.scalar(counted) or 0
    return Page(total=total, start=search.start, items=rows)


def members_of(session: Session, team_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[MemberRef]]:
    """The SCIM-provisioned members of each of these teams, in one query."""
    found: dict[uuid.UUID, list[MemberRef]] = defaultdict(list)
    if not team_ids:
        return found
    rows = session.execute(
        select(TeamMembership.team_id, ScimUser.id, User.name)
        .join(ScimUser, ScimUser.user_id == TeamMembership.user_id)
        .join(User, User.id == TeamMembership.user_id)
        .where(TeamMembership.team_id.in_(team_ids))
        .order_by(ScimUser.id)
    )
    for team_id, scim_id, name in rows:
        found[team_id].append(MemberRef(str(scim_id), name))
    return found
