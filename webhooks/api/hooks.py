"""Admin API: the organisation's notification hooks and their delivery log (admins only)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from models.actions import notification_deliveries
from models.actions import notification_hooks as hooks
from models.actions.notification_deliveries import deliveries_of
from models.outbound_targets import resolved_ahead
from webhooks.api.params import int_param
from webhooks.api.review_schemas import CreateHook, EditHook, RotateSecret
from webhooks.auth import admin_actor, current_admin
from webhooks.body import no_fields, parse_body
from webhooks.context import db_session, nothing_held_while_calling, settings

bp = Blueprint("notification_hooks", __name__, url_prefix="/api/v1")


@bp.get("/notification-hooks")
def index() -> dict[str, Any]:
    viewer = current_admin()
    return {
        "items": [
            hooks.hook_view(h) for h in hooks.list_hooks(db_session(), viewer.organisation_id)
        ]
    }


@bp.post("/notification-hooks")
def create() -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    body = parse_body(CreateHook)
    nothing_held_while_calling()  # the target's name is resolved first
    names = resolved_ahead(settings().outbound_policy(), body.target)
    session = db_session()
    hook, secret = hooks.create_hook(
        session,
        organisation_id=viewer.organisation_id,
        name=body.name,
        kind=body.kind,
        target=body.target,
        events=body.events,
        url_policy=names,
        secret_key=settings().secret_key,
        actor=admin_actor(viewer),
    )
    session.commit()
    return {**hooks.hook_view(hook), "signing_secret": secret}, 201


@bp.get("/notification-hooks/<uuid:hook_id>")
def show(hook_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    return hooks.hook_view(hooks.get_hook(db_session(), viewer.organisation_id, hook_id))


@bp.patch("/notification-hooks/<uuid:hook_id>")
def edit(hook_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    body = parse_body(EditHook)
    nothing_held_while_calling()  # the target's name is resolved first
    names = resolved_ahead(settings().outbound_policy(), body.target)
    session = db_session()
    hook = hooks.get_hook(session, viewer.organisation_id, hook_id)
    hook = hooks.update_hook(
        session,
        hook=hook,
        actor=admin_actor(viewer),
        url_policy=names,
        **body.model_dump(exclude_none=True),
    )
    session.commit()
    return hooks.hook_view(hook)


@bp.delete("/notification-hooks/<uuid:hook_id>")
def delete(hook_id: uuid.UUID) -> tuple[str, int]:
    viewer = current_admin()
    session = db_session()
    hooks.delete_hook(
        session,
        hook=hooks.get_hook(session, viewer.organisation_id, hook_id),
        actor=admin_actor(viewer),
    )
    session.commit()
    return "", 204


@bp.post("/notification-hooks/<uuid:hook_id>/rotate-secret")
def rotate(hook_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    keep = (
        parse_body(RotateSecret).keep_previous_hours if bool(request.get_data(cache=True)) else 24.0
    )
    session = db_session()
    hook = hooks.get_hook(session, viewer.organisation_id, hook_id)
    secret = hooks.rotate_secret(
        session,
        hook=hook,
        secret_key=settings().secret_key,
        actor=admin_actor(viewer),
        keep_previous_hours=keep,
    )
    session.commit()
    return {**hooks.hook_view(hook), "signing_secret": secret}


@bp.get("/notification-hooks/<uuid:hook_id>/deliveries")
def deliveries(hook_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    session = db_session()
    hook = hooks.get_hook(session, viewer.organisation_id, hook_id)
    limit = int_param("limit", 50, low=1, high=500)
    return {
        "items": deliveries_of(
            session, organisation_id=viewer.organisation_id, hook_id=hook.id, limit=limit
        )
    }


@bp.get("/notification-deliveries/<uuid:delivery_id>")
def delivery(delivery_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    session = db_session()
    found = notification_deliveries.get_notification_delivery(
        session, viewer.organisation_id, delivery_id
    )
    return notification_deliveries.delivery_view(session, found)


@bp.post("/notification-deliveries/<uuid:delivery_id>/resend")
def resend(delivery_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    no_fields()
    session = db_session()
    found = notification_deliveries.get_notification_delivery(
        session, viewer.organisation_id, delivery_id
    )
    notification_deliveries.resend_delivery(session, delivery=found, actor=admin_actor(viewer))
    session.commit()
    return notification_deliveries.delivery_view(session, found), 202
