"""OpenAPI entries for the audit trail and the audit log streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.enums import Source
from webhooks.api.responses import STRING, TIME, UUID, obj, ref

NULLABLE_STRING = {"type": ["string", "null"]}
JSON_OBJECT = {"type": ["object", "null"]}

SCHEMAS: dict[str, dict[str, Any]] = {
    "AuditEvent": obj(
        id=UUID,
        occurred_at=TIME,
        organisation_id={"type": ["string", "null"], "format": "uuid"},
        source={"type": "string", "enum": [source.value for source in Source]},
        actor={"type": "string", "description": "who: an admin's name, a job, a source"},
        actor_user_id={"type": ["string", "null"], "format": "uuid"},
        action={"type": "string", "description": "what, e.g. user.revoked"},
        target_type=STRING,
        target_id=STRING,
        before=JSON_OBJECT,
        after=JSON_OBJECT,
        request_id={
            "type": ["string", "null"],
            "description": "the request (X-Request-Id) or task run that caused it",
        },
    ),
    "AuditEventPage": obj(
        items={"type": "array", "items": ref("AuditEvent")},
        next_cursor={
            "type": ["string", "null"],
            "description": "pass as `cursor` for the next (older) page; null on the last page",
        },
    ),
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


UUID_QUERY = {"type": "string", "format": "uuid"}
AUDIT_PARAMS = [
    _query("since", TIME, "events at or after this time (ISO 8601)"),
    _query("until", TIME, "events before this time (ISO 8601)"),
    _query("source", {"type": "string", "enum": [s.value for s in Source]}, "what caused it"),
    _query("actor", STRING, "who, exactly as recorded"),
    _query("actor_user_id", UUID_QUERY, "the acting user"),
    _query("action", STRING, "an action, or a prefix such as `user.*`"),
    _query("user_id", UUID_QUERY, "events about this person"),
    _query("team_id", UUID_QUERY, "events about this team"),
    _query("key_id", UUID_QUERY, "events about this virtual API key"),
    _query("target_type", STRING, "events about objects of this type"),
    _query("target_id", STRING, "with target_type: events about this object"),
    _query("request_id", STRING, "events one request caused"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
    _query("cursor", STRING, "the next_cursor of the previous page"),
]


def register(
    paths: dict[str, dict[str, Any]],
    schemas: dict[str, dict[str, Any]],
    operation: Callable[..., dict[str, Any]],
) -> None:
    schemas.update(SCHEMAS)
    paths["/audit-events"] = {
        "get": operation(
            "The audit trail, newest first, keyset-paginated (Organisation Admin)",
            params=AUDIT_PARAMS,
            returns="AuditEventPage",
            errors=(400, 401, 403),
        )
    }
