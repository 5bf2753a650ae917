"""The OpenAPI 3.1 document of the Odock bridge (docs/odock.md), served at
/odock/v1/openapi.json: the push API odock-sync serves, and the list and command endpoints of
the management plane that it calls."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from models.actions.odock_events import ChangeEvent
from models.actions.odock_objects import BudgetIn, KeyIn, QuotaIn
from models.actions.odock_usage import UsageBatch
from models.enums import BUDGET_COMMANDS, StoreCommandType

BODIES: list[type[BaseModel]] = [KeyIn, BudgetIn, QuotaIn, UsageBatch, ChangeEvent]
PROBLEM = {"$ref": "#/components/schemas/Problem"}
OBJECT_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
VERSION = {
    "name": "version",
    "in": "query",
    "required": True,
    "description": "the object's version when it was deleted; an older delete is ignored",
    "schema": {"type": "integer", "minimum": 0},
}
SIGNATURE_HEADERS = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(
    summary: str,
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: int = 200,
    returns: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (400, 401, 413),
    served_here: bool = True,
) -> dict[str, Any]:
    """One operation. Those odock-sync serves (`served_here`) that take a body also answer
    415 to a body said to be anything but JSON (webhooks.body.check_json_type); the
    management plane's and the gateway's answers are theirs."""
    refused_types = (415,) if body is not None and served_here else ()
    success: dict[str, Any] = {"description": "success"}
    if returns is not None:
        success["content"] = {"application/json": {"schema": returns}}
    spec: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {str(ok): success}
        | {
            str(code): {
                "description": "problem",
                "content": {"application/problem+json": {"schema": PROBLEM}},
            }
            for code in (*errors, *refused_types)
        },
    }
    if body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return spec


def _object_paths(collection: str, schema: str) -> dict[str, Any]:
    """PUT and DELETE of one object; 404 when its id is not a UUID (no such path here)."""
    stored = _ref(_stored_name(schema))
    return {
        f"/{collection}/{{id}}": {
            "put": _operation(
                f"Create or update a {schema.removesuffix('In').lower()} by Odock's id; an older "
                "or equal version is acknowledged and ignored (applied: false)",
                body=schema,
                params=[OBJECT_ID],
                returns=stored,
                errors=(400, 401, 404, 409, 413, 422),
            ),
            "delete": _operation(
                "Delete it (idempotent; a tombstone keeps an older upsert from bringing it back)",
                params=[OBJECT_ID, VERSION],
                ok=204,
                errors=(400, 401, 404, 409),
            ),
        }
    }


def _stored_name(schema: str) -> str:
    return f"{schema.removesuffix('In')}Stored"


def _stored(schema: dict[str, Any]) -> dict[str, Any]:
    """The answer to an upsert: the object as held (its fields as pushed, the amount as a
    decimal string), or only its id when a tombstone keeps it out, and whether it applied."""
    return {
        "type": "object",
        "properties": {
            **schema["properties"],
            "id": {"type": "string", "format": "uuid"},
            "applied": {"type": "boolean"},
        },
        "required": ["id", "applied"],
    }


LISTING_ANSWERS = (
    "Any answer but 200 with {items, next_cursor} (or none within ODOCK_TIMEOUT) ends the "
    "listing as incomplete: the reconcile deletes nothing and runs again later, with backoff"
)


def _listed_name(schema: str) -> str:
    return f"{schema.removesuffix('In')}Listed"


def _listed(schema: dict[str, Any]) -> dict[str, Any]:
    """An item of a listing page: the object as it would be pushed, with its id."""
    return {
        **schema,
        "properties": {**schema["properties"], "id": {"type": "string", "format": "uuid"}},
        "required": ["id", *schema.get("required", [])],
        "title": schema.get("title", "").replace("In", "Listed"),
    }


def _listing(schema: str) -> dict[str, Any]:
    item = _ref(_listed_name(schema))
    return _operation(
        "Served by the management plane and read by the reconcile, page by page",
        params=[
            {
                "name": "organisation_id",
                "in": "query",
                "required": True,
                "schema": {"type": "string"},
            },
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
        ],
        returns={
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": item},
                "next_cursor": {"type": ["string", "null"]},
            },
            "required": ["items", "next_cursor"],
        },
        errors=(400, 401, 429, 500, 503),
    ) | {"description": LISTING_ANSWERS}


EVENT_ANSWER = {
    "type": "object",
    "properties": {
        "status": {"enum": ["accepted", "duplicate"]},
        "delivery_id": {"type": "string"},
    },
    "required": ["status", "delivery_id"],
}
PATHS: dict[str, Any] = {
    **_object_paths("keys", "KeyIn"),
    **_object_paths("budgets", "BudgetIn"),
    **_object_paths("quotas", "QuotaIn"),
    "/usage": {
        "post": _operation(
            "Push usage records (at most 5,000; idempotent by record id); usage after a "
            "revocation opens an urgent finding at once",
            body="UsageBatch",
            returns={
                "type": "object",
                "properties": {
                    "accepted": {"type": "integer"},
                    "duplicates": {"type": "integer"},
                },
            },
            errors=(400, 401, 413, 422),
        )
    },
    "/events": {
        "post": _operation(
            "A Standard-Webhooks-signed change event, stored once per webhook-id and applied "
            "in order per object",
            body="ChangeEvent",
            params=SIGNATURE_HEADERS,
            ok=202,
            returns=EVENT_ANSWER,
            errors=(400, 401, 404, 413),
        )
    },
}
PATHS["/events"]["post"]["responses"]["200"] = {
    "description": "a repeated webhook-id: stored already, not applied again (status duplicate)",
    "content": {"application/json": {"schema": EVENT_ANSWER}},
}
COMMAND_ANSWERS = (
    "2xx with applied_at is the acknowledgement (a repeated id must answer its first "
    "applied_at); 404 or 410 in JSON (problem JSON) ends the command (no such key or "
    "budget; a 404 page that is not JSON is a failed attempt); any other answer "
    "(202 accepted for later, 3xx, never followed, 401, 409, 422, 429, 5xx) or none within "
    "ODOCK_TIMEOUT is a failed attempt and the same "
    "command is sent again under the same id, with backoff and after any Retry-After"
)
BUSY = {
    "description": "the database could not serve the request in time (another writer held "
    "it); nothing was kept: send it again after Retry-After",
    "headers": {"Retry-After": {"schema": {"type": "string"}}},
    "content": {"application/problem+json": {"schema": PROBLEM}},
}
for _operations in PATHS.values():
    for _spec in _operations.values():
        _spec["responses"]["503"] = BUSY
# The management plane's side, which odock-sync calls (outside this server's /odock/v1).
MANAGEMENT_PLANE = {
    f"/v1/sync/{collection}": {"get": _listing(schema)}
    for collection, schema in (("keys", "KeyIn"), ("budgets", "BudgetIn"), ("quotas", "QuotaIn"))
} | {
    "/v1/sync/commands": {
        "post": _operation(
            "Served by the management plane: apply one command odock-sync decided, once per "
            "id (a repeat answers the first applied_at); 404/410 ends it (no such object)",
            body="StoreCommand",
            params=SIGNATURE_HEADERS,
            returns={
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "applied_at": {"type": "string", "format": "date-time"},
                },
                "required": ["applied_at"],
            },
            errors=(401, 404, 410, 409, 422, 429, 500, 503),
            served_here=False,
        )
        | {"description": COMMAND_ANSWERS}
    }
}
for _code in ("429", "503"):
    MANAGEMENT_PLANE["/v1/sync/commands"]["post"]["responses"][_code]["headers"] = {
        "Retry-After": {
            "description": "seconds, or an HTTP date: no command for this key (nor the round's "
            "other keys) is sent before then, up to odock-sync's backoff cap",
            "schema": {"type": "string"},
        }
    }
KEY_IDS = {
    "type": "object",
    "properties": {"key_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}}},
    "required": ["key_ids"],
    "additionalProperties": False,
}
# The gateway's internal side, which odock-sync calls after the store acknowledged (Bearer
# GATEWAY_SECRET); any answer but a 2xx (202 aside) in JSON is a failed attempt, repeated with
# backoff.
GATEWAY = {
    "/v1/internal/cache/invalidate": {
        "post": _operation(
            "Served by the gateway: forget these keys in every node's cache, so the next request "
            "with one re-reads the store; once done, 2xx with a JSON object or with no body "
            "(204, Content-Length 0, or an empty chunked body); a page in any other format, a "
            "captive portal's or a web server's, is not the gateway's answer; a 202, accepted "
            "for later, is not done",
            body="KeyIds",
            returns={
                "type": "object",
                "properties": {
                    "invalidated": {
                        "type": "integer",
                        "description": "how many keys were forgotten (not read)",
                    }
                },
            },
            errors=(401, 503),
            served_here=False,
        )
    },
    "/v1/internal/keys/status": {
        "post": _operation(
            "Served by the gateway: whether it would accept each key now (the proof that a "
            "revoked key is dead there)",
            body="KeyIds",
            returns={
                "type": "object",
                "properties": {
                    "keys": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string", "format": "uuid"},
                                "accepted": {"type": "boolean"},
                                "checked_at": {"type": "string", "format": "date-time"},
                            },
                            "required": ["id", "accepted", "checked_at"],
                        },
                    }
                },
                "required": ["keys"],
            },
            errors=(401, 503),
            served_here=False,
        )
    },
}
for _gateway_operation in GATEWAY.values():
    for _code in ("401", "503"):  # the body of a refusal is not read
        _gateway_operation["post"]["responses"][_code] = {"description": "not done"}

_UUID = {"type": "string", "format": "uuid"}
_COMMAND_COMMON = {
    "id": _UUID,
    "organisation_id": _UUID,
    "reason": {"type": "string"},
    "issued_at": {"type": "string", "format": "date-time"},
}
STORE_COMMAND = {
    "oneOf": [
        {
            "type": "object",
            "description": "A key command: the gateway's cache is invalidated after it",
            "properties": {
                **_COMMAND_COMMON,
                "type": {"enum": [t.value for t in StoreCommandType if t not in BUDGET_COMMANDS]},
                "key_id": _UUID,
                "owner_user_id": {"oneOf": [_UUID, {"type": "null"}]},
                "owner_team_id": {"oneOf": [_UUID, {"type": "null"}]},
            },
            "required": ["id", "type", "organisation_id", "key_id", "issued_at"],
        },
        {
            "type": "object",
            "description": "A budget command: budget.freeze stops spending against the budget "
            "(its owner's access was revoked), budget.thaw undoes exactly that freeze",
            "properties": {
                **_COMMAND_COMMON,
                "type": {"enum": sorted(t.value for t in BUDGET_COMMANDS)},
                "budget_id": _UUID,
            },
            "required": ["id", "type", "organisation_id", "budget_id", "issued_at"],
        },
    ]
}


@functools.cache
def document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in BODIES], ref_template="#/components/schemas/{model}"
    )
    components: dict[str, Any] = dict(definitions.get("$defs", {}))
    for model in (KeyIn, BudgetIn, QuotaIn):
        components[_stored_name(model.__name__)] = _stored(components[model.__name__])
        components[_listed_name(model.__name__)] = _listed(components[model.__name__])
    components["StoreCommand"] = STORE_COMMAND
    components["KeyIds"] = KEY_IDS
    components["Problem"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["title", "status", "detail"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "odock-sync: the Odock bridge",
            "version": "1",
            "description": "See docs/odock.md. The `x-management-plane` paths are served by "
            "Odock (or an adapter) and called by odock-sync (the reconcile's listings, the store "
            "commands); the `x-gateway` paths are served by Odock's gateway and called by "
            "odock-sync after the store acknowledged a key command.",
        },
        "servers": [{"url": "/odock/v1"}],
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": PATHS,
        "x-management-plane": MANAGEMENT_PLANE,
        "x-gateway": GATEWAY,
    }
