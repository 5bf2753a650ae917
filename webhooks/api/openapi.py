"""The OpenAPI 3.1 document of the admin API, served at /api/v1/openapi.json."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webhooks.api import responses, schemas
from webhooks.body import NoFields

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
    schemas.DeclineUser,
    schemas.ReactivateUser,
    NoFields,
    schemas.CreateTeam,
    schemas.RenameTeam,
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
    body_required: bool = True,
    returns: str | None = None,
) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if returns is not None:
        success["content"] = {"application/json": {"schema": responses.ref(returns)}}
    elif ok != 204:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    spec: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {str(ok): success}
        | {
            str(code): {
                "description": "problem",
                "content": {"application/problem+json": {"schema": PROBLEM}},
            }
            # A body said to be anything but JSON: 415 (webhooks.body.check_json_type).
            for code in ((*errors, 415) if body is not None else errors)
        },
    }
    if body is not None:
        if body not in BODIES:  # every body an operation names is a component
            BODIES.append(body)
        ref = {"$ref": f"#/components/schemas/{body.__name__}"}
        spec["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref}},
        }
    return spec


def lifecycle(summary: str, body: type[BaseModel]) -> dict[str, Any]:
    """A lifecycle action (Organisation Admin): the body is optional."""
    return operation(
        summary,
        body=body,
        body_required=False,
        params=[USER_ID],
        returns="UserProfile",
        errors=(400, 401, 403, 404, 409, 413),
    )


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
        "get": operation(
            "List users visible to the caller", params=LIST_PARAMS, returns="UserPage"
        ),
        "post": operation(
            "Create a user (Organisation Admin)",
            body=schemas.CreateUser,
            ok=201,
            returns="UserProfile",
            errors=(400, 401, 403, 409),
        ),
    },
    "/me": {"get": operation("The caller's own user detail", returns="UserDetail")},
    "/users/{user_id}": {
        "get": operation(
            "User detail: profile, teams, keys, usage, budgets, quotas",
            params=[USER_ID],
            returns="UserDetail",
        ),
        "patch": operation(
            "Edit name, email, role or status",
            body=schemas.EditUser,
            params=[USER_ID],
            returns="UserProfile",
            errors=(400, 401, 403, 404, 409),
        ),
    },
    "/users/{user_id}/approve": {"post": lifecycle("Approve a PENDING user", NoFields)},
    "/users/{user_id}/decline": {"post": lifecycle("Decline a PENDING user", schemas.DeclineUser)},
    "/users/{user_id}/revoke": {
        "post": lifecycle(
            "Revoke an ACTIVE user: its own keys are disabled and a review opens",
            schemas.RevokeUser,
        )
    },
    "/users/{user_id}/access-end": {
        "put": operation(
            "Set, move or clear when a user's access ends (Organisation Admin): at that moment "
            "the schedule revokes them; moving it later or clearing it cancels that (409 "
            "`last_admin` for a passed date of the last active Organisation Admin)",
            body=schemas.SetAccessEnd,
            params=[USER_ID],
            returns="UserProfile",
            errors=(400, 401, 403, 404, 409, 413),
        )
    },
    "/users/{user_id}/reactivate": {
        "post": lifecycle(
            "Reactivate a REVOKED user: undo exactly what the revocation did (409 when a key it "
            "disabled was used after it, unless restore_used_keys is true)",
            schemas.ReactivateUser,
        )
    },
    "/teams": {
        "get": operation("Teams visible to the caller", returns="TeamList"),
        "post": operation(
            "Create a team (Organisation Admin)",
            body=schemas.CreateTeam,
            ok=201,
            returns="Team",
            errors=(400, 401, 403, 409),
        ),
    },
    "/teams/{team_id}": {
        "patch": operation(
            "Rename a team (Organisation Admin); the rule of team names applies to the new name",
            body=schemas.RenameTeam,
            params=[TEAM_ID],
            returns="Team",
            errors=(400, 401, 403, 404, 409),
        ),
        "delete": operation(
            "Delete a team (Organisation Admin): its keys are revoked or handed to their "
            "creators per deleted_team_key_policy, its budgets and quotas flagged in a review",
            params=[TEAM_ID],
            errors=(401, 403, 404),
        ),
    },
    "/teams/{team_id}/members": {
        "get": operation(
            "A team's members and their team roles", params=[TEAM_ID], returns="TeamMembers"
        )
    },
    "/teams/{team_id}/members/{user_id}": {
        "put": operation(
            "Add a member or change their team role (409 for a REVOKED person, audited "
            "user.team_membership_refused)",
            body=schemas.SetMembership,
            params=[TEAM_ID, USER_ID],
            returns="TeamMembers",
            errors=(400, 401, 403, 404, 409),
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


API_PREFIX = "/api/v1"
RULE_PARAMETER = re.compile(r"<(?:([a-z]+):)?([a-z_]+)>")


def derived_paths(app: Flask) -> tuple[dict[str, dict[str, Any]], list[type[BaseModel]]]:
    """Operations for the routes not described in PATHS, from the views themselves:
    the summary is the view's docstring, the body the schema `takes_body` marked it with."""
    paths: dict[str, dict[str, Any]] = {}
    bodies: list[type[BaseModel]] = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX) or rule.endpoint == "openapi.openapi_json":
            continue
        path = RULE_PARAMETER.sub(r"{\2}", rule.rule.removeprefix(API_PREFIX))
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() in PATHS.get(path, {}):
                continue
            body = getattr(view, "openapi_body", None)
            if body is not None:
                bodies.append(body)
            paths.setdefault(path, {})[method.lower()] = operation(
                (view.__doc__ or rule.endpoint).strip().splitlines()[0],
                body=body,
                body_required=getattr(view, "openapi_body_required", True),
                params=[
                    _path_parameter(name, kind) for kind, name in RULE_PARAMETER.findall(rule.rule)
                ],
                ok=getattr(view, "openapi_ok", None) or _success_status(method, view.__name__),
                errors=(400, 401, 403, 404, 409),
            )
    return paths, bodies


def _success_status(method: str, view_name: str) -> int:
    if method == "DELETE":
        return 204
    return 201 if method == "POST" and view_name == "create" else 200


def _path_parameter(name: str, kind: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "uuid"} if kind == "uuid" else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def document() -> dict[str, Any]:
    extra_paths, extra_bodies = derived_paths(current_app)
    paths = {
        path: {**PATHS.get(path, {}), **extra_paths.get(path, {})} for path in PATHS | extra_paths
    }
    # One pass over all bodies, so shared enums (Role, TeamRole) become components that
    # every $ref can reach, instead of per-schema $defs the refs would miss.
    _, definitions = models_json_schema(
        [(model, "validation") for model in dict.fromkeys(BODIES + extra_bodies)],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = dict(definitions.get("$defs", {})) | responses.SCHEMAS
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
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return document()


from webhooks.api.review_openapi import register as _register_reviews  # noqa: E402

_register_reviews(PATHS, BODIES, operation)

from webhooks.api.audit_openapi import register as _register_audit  # noqa: E402

_register_audit(PATHS, responses.SCHEMAS, operation)

from webhooks.api.recertification_openapi import register as _register_recertification  # noqa: E402

_register_recertification(PATHS, BODIES, operation)
