"""Admin API: each source's health, the open incidents, and how long sources may be quiet."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import Field

from models.actions import organisations
from models.base import utcnow
from models.entities import Organisation
from models.source_health import failing_hooks, open_incidents, source_statuses
from webhooks.api.described import takes_body
from webhooks.auth import admin_actor, current_admin
from webhooks.body import RequestBody, parse_body
from webhooks.context import db_session

bp = Blueprint("source_health", __name__, url_prefix="/api/v1")

SETTING_NAMES = (
    "scim_silence_seconds",
    "ldap_silence_seconds",
    "idp_events_silence_seconds",
    "stream_failure_seconds",
)


class HealthSettings(RequestBody):
    scim_silence_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)
    ldap_silence_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)
    idp_events_silence_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)
    stream_failure_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)


@bp.get("/source-health")
def show() -> dict[str, Any]:
    """Each configured source: last sign of life, allowance, open incidents, failing hooks"""
    viewer, session, now = current_admin(), db_session(), utcnow()
    org_id = viewer.organisation_id
    return {
        "sources": [s.view(now) for s in source_statuses(session, organisation_id=org_id, now=now)],
        "incidents": [
            {
                "id": str(i.id),
                "source": i.source,
                "opened_at": i.opened_at.isoformat(),
                "reason": i.reason,
            }
            for i in open_incidents(session, organisation_id=org_id)
        ],
        "failing_hooks": failing_hooks(session, organisation_id=org_id),
        "settings": _settings(session.get_one(Organisation, org_id)),
    }


@bp.patch("/source-health/settings")
@takes_body(HealthSettings)
def edit_settings() -> dict[str, Any]:
    """How long each kind of source may stay quiet (or a stream fail) before admins are alerted"""
    viewer = current_admin()
    changes = parse_body(HealthSettings).model_dump(exclude_none=True)
    session = db_session()
    organisation = session.get_one(Organisation, viewer.organisation_id)
    if changes:
        organisations.update_settings(
            session, organisation=organisation, changes=changes, actor=admin_actor(viewer)
        )
        session.commit()
    return _settings(organisation)


def _settings(organisation: Organisation) -> dict[str, int]:
    return {name: getattr(organisation.settings, name) for name in SETTING_NAMES}
