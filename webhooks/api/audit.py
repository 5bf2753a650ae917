"""Admin API: the organisation's audit trail, filtered, newest first (admins only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from models.access import require_admin
from models.enums import Source
from models.errors import InvalidInput
from models.queries.audit_events import (
    MAX_PAGE,
    TARGET_KINDS,
    AuditFilter,
    list_events,
    parse_moment,
)
from webhooks.api.params import enum_param, int_param, text_param, uuid_param
from webhooks.auth import current_viewer
from webhooks.context import db_session

bp = Blueprint("audit", __name__, url_prefix="/api/v1")


@bp.get("/audit-events")
def index() -> dict[str, Any]:
    viewer = current_viewer()
    require_admin(viewer)
    page = list_events(
        db_session(),
        audit_filters(viewer.organisation_id),
        limit=int_param("limit", 100, low=1, high=MAX_PAGE),
        cursor=text_param("cursor", max_length=200),
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


def audit_filters(organisation_id: Any) -> AuditFilter:
    """The filters of the query string (the API's and the console's), clear 400s if bad."""
    user_id, team_id = uuid_param("user_id"), uuid_param("team_id")
    target_type, target_id = _target()
    if user_id is not None or team_id is not None:
        target_type = target_id = None  # matched with the batch events that list them
    actor_user = uuid_param("actor_user_id")
    return AuditFilter(
        organisation_id=organisation_id,
        since=_moment("since"),
        until=_moment("until"),
        source=enum_param("source", Source),
        actor=text_param("actor", max_length=255),
        actor_user_id=actor_user,
        action=text_param("action", max_length=64),
        target_type=target_type,
        target_id=target_id,
        request_id=text_param("request_id", max_length=64),
        user_id=user_id,
        team_id=team_id,
    )


def _moment(name: str) -> Any:
    value = text_param(name, max_length=64)
    return parse_moment(value, name) if value else None


def _target() -> tuple[str | None, str | None]:
    """`user_id`, `team_id` or `key_id`; or `target_type` with an optional `target_id`."""
    given = [(kind, uuid_param(f"{kind}_id")) for kind in TARGET_KINDS]
    chosen = [(TARGET_KINDS[kind], str(value)) for kind, value in given if value is not None]
    raw_type = text_param("target_type", max_length=32)
    raw_id = text_param("target_id", max_length=64)
    if len(chosen) + (1 if raw_type or raw_id else 0) > 1:
        raise InvalidInput("give one of user_id, team_id, key_id or target_type/target_id")
    if chosen:
        return chosen[0]
    if raw_id and not raw_type:
        raise InvalidInput("target_id needs target_type", field="target_id")
    return raw_type, raw_id
