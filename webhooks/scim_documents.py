"""Domain -> SCIM: a stored person (as a record, models.queries.scim_records) or team as its
SCIM document (RFC 7643), for the provider.

The connector (connectors/scim/casting.py) owns the document's pieces and the way back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.scim.casting import (
    MemberRef,
    compact,
    put,
    put_at,
    timestamp,
    version_of,
    with_meta,
)
from connectors.scim.schemas import ENTERPRISE, GROUP, USER
from models.entities import Team
from models.queries.scim_records import UserRecord


def user_to_scim(record: UserRecord, base_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemas": [USER], "id": record.id}
    put(doc, "externalId", record.external_id)
    doc["userName"] = record.user_name
    extra = dict(record.extra)
    name = compact(
        {
            "formatted": record.formatted_name,
            "familyName": record.family_name,
            "givenName": record.given_name,
            **extra.pop("name", {}),
        }
    )
    put(doc, "name", name)
    put(doc, "displayName", record.display_name)
    emails = [
        compact({"value": e.value, "type": e.type, "primary": e.primary}) for e in record.emails
    ]
    put(doc, "emails", emails)
    doc["active"] = record.active
    put(
        doc,
        "groups",
        [
            {"value": g.id, "$ref": f"{base_url}/Groups/{g.id}", "display": g.display}
            for g in record.groups
        ],
    )
    manager_id = record.manager_id
    enterprise = compact(
        {
            "employeeNumber": record.employee_number,
            "department": record.department,
            "manager": (
                {"value": manager_id, "$ref": f"{base_url}/Users/{manager_id}"}
                if manager_id
                else None
            ),
            **extra.pop(ENTERPRISE, {}),
        }
    )
    doc.update(extra)
    if enterprise:
        doc["schemas"].append(ENTERPRISE)
        doc[ENTERPRISE] = enterprise
    if record.access_ends_at is not None:
        put_at(doc, record.access_end_attribute, timestamp(record.access_ends_at))
    base = f"{base_url}/Users"
    return with_meta(doc, "User", record.created_at, record.last_modified, base)


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
