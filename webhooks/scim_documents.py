"""Domain -> SCIM: a stored person (as a record, models.queries.scim_records) or team as its
SCIM document (RFC 7643), for the provider.

The connector (connectors/scim/casting.py) owns the document's pieces and the way back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from connectors.scim.schemas import ENTERPRISE, GROUP, LIST_RESPONSE, USER
from models.entities import Team
from models.queries.scim_records import REMEMBERED_RECORDS, UserRecord


@dataclass(slots=True)
class _Rendered:
    record: UserRecord
    document: dict[str, Any]
    body: str | None = field(default=None)


# (id of a record, base URL) and id of its document -> the rendering. A read's record is
# the same object for the same row (models.queries.scim_records), so a user read again
# unchanged is not rendered, versioned or serialised again; any change of its row is
# another record. Each entry holds its record and document, so an id is never a stale one.
_BY_RECORD: dict[tuple[int, str], _Rendered] = {}
_BY_DOCUMENT: dict[int, _Rendered] = {}


def read_user_document(record: UserRecord, base_url: str) -> dict[str, Any]:
    """user_to_scim, kept for reads: the document is shared and must not be changed (a
    projection builds its own, see connectors.scim.projection)."""
    found = _BY_RECORD.get((id(record), base_url))
    if found is not None and found.record is record:
        return found.document
    rendered = _Rendered(record, user_to_scim(record, base_url))
    if len(_BY_RECORD) >= REMEMBERED_RECORDS:
        _BY_RECORD.clear()
        _BY_DOCUMENT.clear()
    _BY_RECORD[(id(record), base_url)] = rendered
    _BY_DOCUMENT[id(rendered.document)] = rendered
    return rendered.document


def json_text(document: dict[str, Any]) -> str:
    """json.dumps(document), serialised once for a document read_user_document kept."""
    found = _BY_DOCUMENT.get(id(document))
    if found is None or found.document is not document:
        return json.dumps(document)
    if found.body is None:
        found.body = json.dumps(document)
    return found.body


def list_json_text(envelope: dict[str, Any]) -> str:
    """json.dumps of a ListResponse (its Resources last), each kept resource's text reused."""
    items = ", ".join(json_text(resource) for resource in envelope["Resources"])
    return f'{_head_text(envelope)}"Resources": [{items}]}}'


# A listing's envelope (scim_provider._list) as json.dumps writes it, open for its Resources:
# json.dumps of this small dict was 6 us of a filtered read's 500 (measured in process).
_COUNTS = ("totalResults", "startIndex", "itemsPerPage")
_LISTING_KEYS = ["schemas", *_COUNTS, "Resources"]
_LISTING_HEAD = (
    '{"schemas": ' + json.dumps([LIST_RESPONSE]) + ', "totalResults": %d, "startIndex": %d, '
    '"itemsPerPage": %d, '
)


def _head_text(envelope: dict[str, Any]) -> str:
    """json.dumps of the envelope without its Resources and closing brace."""
    counts = tuple(envelope.get(name) for name in _COUNTS)
    if (
        list(envelope) == _LISTING_KEYS
        and envelope["schemas"] == [LIST_RESPONSE]
        and all(type(count) is int for count in counts)
    ):
        return _LISTING_HEAD % counts
    head = json.dumps({k: v for k, v in envelope.items() if k != "Resources"})
    return head[:-1] + (", " if len(envelope) > 1 else "")


def user_to_scim(record: UserRecord, base_url: str) -> dict[str, Any]:
    return with_user_meta(user_content(record, base_url), record, base_url)


def with_user_meta(doc: dict[str, Any], record: UserRecord, base_url: str) -> dict[str, Any]:
    """The user's content (user_content) with its meta: times, location and version."""
    base = f"{base_url}/Users"
    return with_meta(doc, "User", record.created_at, record.last_modified, base)


def user_content(record: UserRecord, base_url: str) -> dict[str, Any]:
    """The user's document without its meta (a PATCH applies its operations to this; its
    version is version_of of it)."""
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
    return doc


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
