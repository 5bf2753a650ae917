"""Domain -> SCIM: a stored person or team as its SCIM document (RFC 7643), for the provider.

The connector (connectors/scim/casting.py) owns the document's pieces and the way back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.scim.casting import (
    ACCESS_END_ATTRIBUTE,
    GroupRef,
    MemberRef,
    compact,
    put,
    put_at,
    timestamp,
    version_of,
    with_meta,
)
from connectors.scim.schemas import ENTERPRISE, GROUP, USER
from models.entities import ScimUser, Team
from models.enums import UserStatus


def user_to_scim(
    scim_user: ScimUser,
    groups: Sequence[GroupRef],
    base_url: str,
    access_end_attribute: str = ACCESS_END_ATTRIBUTE,
) -> dict[str, Any]:
    user = scim_user.user
    doc: dict[str, Any] = {"schemas": [USER], "id": str(scim_user.id)}
    put(doc, "externalId", scim_user.external_id)
    doc["userName"] = scim_user.user_name
    extra = dict(scim_user.extra or {})
    name = compact(
        {
            "formatted": scim_user.formatted_name,
            "familyName": scim_user.family_name,
            "givenName": scim_user.given_name,
            **extra.pop("name", {}),
        }
    )
    put(doc, "name", name)
    put(doc, "displayName", scim_user.display_name)
    emails = [
        compact({"value": e.value, "type": e.type, "primary": e.primary}) for e in scim_user.emails
    ]
    put(doc, "emails", emails)
    doc["active"] = user.status is not UserStatus.REVOKED and not scim_user.held_inactive
    put(
        doc,
        "groups",
        [
            {"value": g.id, "$ref": f"{base_url}/Groups/{g.id}", "display": g.display}
            for g in groups
        ],
    )
    enterprise = compact(
        {
            "employeeNumber": scim_user.employee_number,
            "department": scim_user.department,
            "manager": (
                {"value": scim_user.manager_id, "$ref": f"{base_url}/Users/{scim_user.manager_id}"}
                if scim_user.manager_id
                else None
            ),
            **extra.pop(ENTERPRISE, {}),
        }
    )
    doc.update(extra)
    if enterprise:
        doc["schemas"].append(ENTERPRISE)
        doc[ENTERPRISE] = enterprise
    if user.access_ends_at is not None:
        put_at(doc, access_end_attribute, timestamp(user.access_ends_at))
    last_modified = max(scim_user.updated_at, user.updated_at)
    return with_meta(doc, "User", scim_user.created_at, last_modified, f"{base_url}/Users")


def team_to_group(
    team: Team, members: Sequence[MemberRef] | None, members_digest: str, base_url: str
) -> dict[str, Any]:
    """The group with its members, or without them (None) when the caller projects them
    away; its version is the same either way, as it covers the members by their digest."""
    doc: dict[str, Any] = {"schemas": [GROUP], "id": str(team.id)}
    put(doc, "externalId", team.external_id)
    doc["displayName"] = team.name
    version = version_of({**doc, "members": members_digest})
    put(
        doc,
        "members",
        [
            {"value": m.id, "$ref": f"{base_url}/Users/{m.id}", "type": "User"}
            for m in members or []
        ],
    )
    base = f"{base_url}/Groups"
    return with_meta(doc, "Group", team.created_at, team.updated_at, base, version)
