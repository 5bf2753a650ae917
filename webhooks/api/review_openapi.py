"""OpenAPI entries for the reviews, findings, preview and notification-hook endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from models.enums import ReviewCause
from webhooks.api import review_schemas as schemas


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def register(
    paths: dict[str, dict[str, Any]],
    bodies: list[type[BaseModel]],
    operation: Callable[..., dict[str, Any]],
) -> None:
    user, review, finding, hook, sent = (
        _path_param("user_id"),
        _path_param("review_id"),
        _path_param("finding_id"),
        _path_param("hook_id"),
        _path_param("delivery_id"),
    )
    review_list = [
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "string", "enum": ["open", "resolved"]},
        },
        {"name": "user_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
        {
            "name": "cause",
            "in": "query",
            "schema": {"type": "string", "enum": [cause.value for cause in ReviewCause]},
        },
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string", "format": "uuid"}},
    ]
    decide = (400, 401, 403, 404, 409)
    paths.update(
        {
            "/users/{user_id}/revocation-preview": {
                "get": operation(
                    "What revoking this user would do (changes nothing)", params=[user]
                )
            },
            "/reviews": {
                "get": operation("Access-change reviews visible to the caller", params=review_list)
            },
            "/key-policy": {
                "get": operation(
                    "What a revocation does to the keys the person owns or created (admins)",
                    errors=(401, 403),
                ),
                "put": operation(
                    "Set what a revocation does to the organisation keys the person created "
                    "(admins; audited organisation.settings_changed)",
                    body=schemas.KeyPolicyChange,
                    errors=(400, 401, 403),
                ),
            },
            "/reviews/{review_id}": {
                "get": operation(
                    "A review: a page of its findings (open, most severe first; `limit` up to "
                    "200, `cursor` = `findings_next_cursor` for the next page, `before` = "
                    "`findings_previous_cursor` for the previous one), revocation, who was "
                    "alerted",
                    params=[
                        review,
                        *review_list[-2:],
                        {
                            "name": "before",
                            "in": "query",
                            "schema": {"type": "string", "format": "uuid"},
                        },
                    ],
                    errors=(400, 401, 403, 404),
                )
            },
            "/reviews/{review_id}/acknowledge": {
                "post": operation(
                    "Acknowledge the open findings (stops reminders)", params=[review]
                )
            },
            "/findings/{finding_id}": {"get": operation("One finding", params=[finding])},
            "/findings/{finding_id}/resolve": {
                "post": operation(
                    "Resolve a finding", body=schemas.DecideFinding, params=[finding], errors=decide
                )
            },
            "/findings/{finding_id}/dismiss": {
                "post": operation(
                    "Dismiss a finding", body=schemas.DecideFinding, params=[finding], errors=decide
                )
            },
            "/findings/{finding_id}/acknowledge": {
                "post": operation("Acknowledge a finding", params=[finding])
            },
            "/findings/{finding_id}/reassign": {
                "post": operation(
                    "Give the key, budget, quota or team to another user or team",
                    body=schemas.ReassignFinding,
                    params=[finding],
                    errors=decide,
                )
            },
            "/notification-hooks": {
                "get": operation("Notification hooks (Organisation Admin)"),
                "post": operation(
                    "Add a hook; a webhook's signing secret is returned once",
                    body=schemas.CreateHook,
                    ok=201,
                    errors=(400, 401, 403),
                ),
            },
            "/notification-hooks/{hook_id}": {
                "get": operation("One hook", params=[hook]),
                "patch": operation("Change a hook", body=schemas.EditHook, params=[hook]),
                "delete": operation("Remove a hook", params=[hook], ok=204),
            },
            "/notification-hooks/{hook_id}/rotate-secret": {
                "post": operation(
                    "Add a signing secret; previous ones sign during a grace period",
                    body=schemas.RotateSecret,
                    params=[hook],
                )
            },
            "/notification-hooks/{hook_id}/deliveries": {
                "get": operation("The hook's delivery log with every attempt", params=[hook])
            },
            "/notification-deliveries/{delivery_id}": {
                "get": operation("One notification delivery with every attempt", params=[sent])
            },
            "/notification-deliveries/{delivery_id}/resend": {
                "post": operation(
                    "Send a delivery again: same payload and webhook id, fresh signature",
                    params=[sent],
                    ok=202,
                    errors=(401, 403, 404, 409),
                )
            },
        }
    )
    bodies += [
        schemas.DecideFinding,
        schemas.ReassignFinding,
        schemas.CreateHook,
        schemas.EditHook,
        schemas.RotateSecret,
    ]
