"""The audit trail with the API's filters (admins only); every id links to what it names."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from models.access import require_admin
from models.enums import Source
from models.errors import InvalidInput
from models.queries.audit_events import list_events
from webhooks.api.audit import audit_filters
from webhooks.api.params import text_param
from webhooks.console.web import bp, page, signed_in
from webhooks.context import db_session

PAGE_SIZE = 50
FILTERS = (
    "since",
    "until",
    "source",
    "actor",
    "actor_user_id",
    "action",
    "user_id",
    "team_id",
    "key_id",
    "target_type",
    "target_id",
    "request_id",
)


@bp.get("/audit")
def audit() -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    given = {name: request.args.get(name, "") for name in FILTERS}
    shown: dict[str, Any] = {
        "given": given,
        "given_nonempty": {k: v for k, v in given.items() if v},
    }
    try:
        events = list_events(
            db_session(),
            audit_filters(viewer.organisation_id),
            limit=PAGE_SIZE,
            cursor=text_param("cursor", max_length=200),
        )
    except InvalidInput as refused:
        return page(
            "audit.html",
            code=400,
            sources=list(Source),
            error=refused.message,
            events=None,
            **shown,
        )
    return page("audit.html", sources=list(Source), error="", events=events, **shown)
