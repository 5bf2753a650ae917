"""The OpenAPI 3.1 document of the admin API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import BaseModel

from webhooks.api import schemas

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

PROBLEM = {"$ref": "#/components/schemas/Problem"}
USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
TEAM_ID = {
    "name": "team_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
LIST_PARAMS = [
    {
        "name": "role",
        "in": "query",
        "schema": {"type": "string", "enum": ["ORG_ADMIN", "MANAGER", "USER"]},
    },
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": ["PENDING", "ACTIVE", "REVOKED"]},
    },
    {"name": "team_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
    {
        "name": "q",
        "in": "query",
        "description": "search in name and email",
        "schema": {"type": "string"},
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "format": "uuid"}},
]

BODIES: list[type[BaseModel]] = [
    schemas.CreateUser,
    schemas.EditUser,
    schemas.RevokeUser,
    schemas.CreateTeam,
    schemas.SetMembership,
    schemas.CreateInvitation,
    schemas.RefreshInvitations,
]


def operation(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: int = 200,
    errors: tuple[int, ...] = (400, 401, 403, 404),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {str(ok): {"description": "success"}}
        | {
            str(code): {
                "description": "problem",
                "content": {"application/problem+json": {"schema": PROBLEM}},
            }
            for code in errors
        },
    }
    if body is not None:
        ref = {"$ref": f"#/components/schemas/{body.__name__}"}
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    return spec


INVITATION_ID = {
    "name": "invitation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
INVITATION_LIST_PARAMS = [
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": ["pending", "accepted", "expired", "revoked"]},
    },
    {"name": "q", "in": "query", "description": "part of the email", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "format": "uuid"}},
]

PATHS: dict[str, dict[str, Any]] = {
    "/users": {
        "get": operation("List users visible to the caller", params=LIST_PARAMS),
        "post": operation(
            "Create a user (Organisation Admin)",
            body=schemas.CreateUser,
            ok=201,
            errors=(400, 401, 403, 409),
        ),
    },
    "/me": {"get": operation("The caller's own user detail")},
    "/users/{user_id}": {
        "get": operation(
            "User detail: profile, teams, keys, usage, budgets, quotas", params=[USER_ID]
        ),
        "patch": operation(
            "Edit name, email, role or status",
            body=schemas.EditUser,
            params=[USER_ID],
            errors=(400, 401, 403, 404, 409),
        ),
    },
    "/users/{user_id}/approve": {
        "post": operation("Approve a PENDING user", params=[USER_ID], errors=(401, 403, 404, 409))
    },
    "/users/{user_id}/decline": {
        "post": operation("Decline a PENDING user", params=[USER_ID], errors=(401, 403, 404, 409))
    },
    "/users/{user_id}/revoke": {
        "post": operation("Revoke an ACTIVE user", params=[USER_ID], errors=(401, 403, 404, 409))
    },
    "/users/{user_id}/reactivate": {
        "post": operation(
            "Reactivate a REVOKED user", params=[USER_ID], errors=(401, 403, 404, 409)
        )
    },
    "/teams": {
        "get": operation("Teams visible to the caller"),
        "post": operation(
            "Create a team (Organisation Admin)",
            body=schemas.CreateTeam,
            ok=201,
            errors=(400, 401, 403, 409),
        ),
    },
    "/teams/{team_id}/members": {
        "get": operation("A team's members and their team roles", params=[TEAM_ID])
    },
    "/teams/{team_id}/members/{user_id}": {
        "put": operation(
            "Add a member or change their team role",
            body=schemas.SetMembership,
            params=[TEAM_ID, USER_ID],
        ),
        "delete": operation("Remove a member", params=[TEAM_ID, USER_ID], ok=204),
    },
    "/invitations": {
        "get": operation(
            "Invitations the caller may see (admins: all; managers: their own)",
            params=INVITATION_LIST_PARAMS,
        ),
        "post": operation(
            "Invite an email with a role and teams; the email is sent by the worker",
            body=schemas.CreateInvitation,
            ok=201,
            errors=(400, 401, 403, 404, 409),
        ),
    },
    "/invitations/{invitation_id}": {
        "get": operation("One invitation with its delivery history", params=[INVITATION_ID])
    },
    "/invitations/{invitation_id}/resend": {
        "post": operation(
            "New link and expiry on the same invitation; the old link stops working",
            params=[INVITATION_ID],
            errors=(401, 403, 404, 409, 429),
        )
    },
    "/invitations/{invitation_id}/revoke": {
        "post": operation(
            "Revoke a pending or expired invitation",
            params=[INVITATION_ID],
            errors=(401, 403, 404, 409),
        )
    },
    "/invitations/refresh": {
        "post": operation("The current status of each invitation", body=schemas.RefreshInvitations)
    },
}


def document() -> dict[str, Any]:
    components = {
        model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for model in BODIES
    }
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
        "info": {"title": "odock-sync admin API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": PATHS,
    }


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return document()
