"""OpenAPI entries for the key recertification endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from models.enums import FindingState
from webhooks.api import recertification_schemas as schemas
from webhooks.api.review_openapi import _path_param


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def register(
    paths: dict[str, dict[str, Any]],
    bodies: list[type[BaseModel]],
    operation: Callable[..., dict[str, Any]],
) -> None:
    campaign, finding = _path_param("campaign_id"), _path_param("finding_id")
    page = [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
        _query("cursor", {"type": "string", "format": "uuid"}),
    ]
    detail = [
        campaign,
        _query("state", {"type": "string", "enum": [s.value for s in FindingState]}),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000}),
    ]
    decide = (400, 401, 403, 404, 409)
    paths.update(
        {
            "/recertification/policy": {
                "get": operation("The organisation's recertification schedule and scope"),
                "put": operation(
                    "Change the schedule, scope, deadline or deadline policy",
                    body=schemas.ConfigureRecertification,
                ),
            },
            "/recertification/campaigns": {
                "get": operation("Campaigns, newest first", params=page),
                "post": operation(
                    "Open a campaign now (its keys in scope become findings); 200 with the "
                    "campaign opened by hand that is still running, if there is one",
                    ok=201,
                    errors=(401, 403),
                ),
            },
            "/recertification/campaigns/{campaign_id}": {
                "get": operation(
                    "A campaign: report, counts and the findings the caller may see",
                    params=detail,
                )
            },
            "/recertification/findings/{finding_id}/decide": {
                "post": operation(
                    "Keep (with a reason), rotate or revoke the finding's key",
                    body=schemas.DecideRecertification,
                    params=[finding],
                    errors=decide,
                )
            },
            "/recertification/findings/{finding_id}/restore": {
                "post": operation(
                    "Restore a key the campaign revoked (Organisation Admin)",
                    body=schemas.RestoreRecertifiedKey,
                    params=[finding],
                    errors=decide,
                    body_required=False,
                )
            },
        }
    )
    bodies += [
        schemas.ConfigureRecertification,
        schemas.DecideRecertification,
        schemas.RestoreRecertifiedKey,
    ]
