"""Admin API: IdP event hook configuration, and the deliveries received with their outcome."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from pydantic import Field

from models.access import Viewer
from models.actions import event_hooks, idp_events
from models.entities import EventHookConfig
from models.errors import InvalidInput
from models.queries.deliveries import (
    delivery_detail,
    delivery_summary,
    get_delivery,
    list_deliveries,
)
from webhooks.api.described import answers, takes_body
from webhooks.api.params import int_param, text_param, uuid_param
from webhooks.auth import admin_actor, current_admin
from webhooks.body import RequestBody, no_fields, parse_body
from webhooks.context import db_session, settings

bp = Blueprint("event_hooks", __name__, url_prefix="/api/v1")


class CustomHeader(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1, max_length=1000)


class SetOktaHook(RequestBody):
    secret: str | None = Field(default=None, min_length=16, max_length=1000)
    header_name: str = Field(default="Authorization", min_length=1, max_length=100)
    custom_header: CustomHeader | None = None


class AddSigningSecret(RequestBody):
    secret: str | None = Field(default=None, max_length=200)


@bp.get("/event-hooks")
def show() -> dict[str, Any]:
    viewer = current_admin()
    return _describe(viewer)


@bp.put("/event-hooks/okta")
@takes_body(SetOktaHook)
def set_okta() -> dict[str, Any]:
    viewer = current_admin()
    body = parse_body(SetOktaHook)
    session = db_session()
    custom = (body.custom_header.name, body.custom_header.value) if body.custom_header else None
    secret = event_hooks.set_okta_secret(
        session,
        organisation=viewer.organisation(session),
        secret_key=settings().secret_key,
        actor=admin_actor(viewer),
        secret=body.secret,
        header_name=body.header_name,
        custom_header=custom,
    )
    session.commit()
    return {**_describe(viewer), "okta_secret": secret}


@bp.delete("/event-hooks/okta")
def clear_okta() -> tuple[str, int]:
    viewer = current_admin()
    session = db_session()
    organisation = viewer.organisation(session)
    event_hooks.clear_okta_secret(session, organisation=organisation, actor=admin_actor(viewer))
    session.commit()
    return "", 204


@bp.post("/event-hooks/signing-secrets")
@takes_body(AddSigningSecret)
@answers(201)
def add_secret() -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    body = parse_body(AddSigningSecret) if _has_body() else AddSigningSecret()
    session = db_session()
    added = event_hooks.add_signing_secret(
        session,
        organisation=viewer.organisation(session),
        secret_key=settings().secret_key,
        actor=admin_actor(viewer),
        secret=body.secret,
    )
    session.commit()
    return {"id": added.id, "secret": added.secret}, 201


@bp.delete("/event-hooks/signing-secrets/<secret_id>")
def remove_secret(secret_id: str) -> tuple[str, int]:
    viewer = current_admin()
    session = db_session()
    event_hooks.remove_signing_secret(
        session,
        organisation=viewer.organisation(session),
        secret_id=secret_id,
        actor=admin_actor(viewer),
    )
    session.commit()
    return "", 204


@bp.get("/event-deliveries")
def deliveries() -> dict[str, Any]:
    viewer = current_admin()
    page = list_deliveries(
        db_session(),
        viewer.organisation_id,
        channel=_choice("channel", idp_events.SOURCES),
        status=_choice("status", idp_events.STATUSES),
        limit=int_param("limit", 50, low=1, high=200),
        after=uuid_param("cursor"),
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.get("/event-deliveries/<uuid:delivery_id>")
def delivery(delivery_id: Any) -> dict[str, Any]:
    viewer = current_admin()
    return delivery_detail(get_delivery(db_session(), viewer.organisation_id, delivery_id))


@bp.post("/event-deliveries/<uuid:delivery_id>/reprocess")
def reprocess(delivery_id: Any) -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    no_fields()
    session = db_session()
    found = get_delivery(session, viewer.organisation_id, delivery_id)
    idp_events.reprocess_delivery(session, delivery=found, actor=admin_actor(viewer))
    session.commit()
    return delivery_summary(found), 202


def _describe(viewer: Viewer) -> dict[str, Any]:
    session = db_session()
    organisation = viewer.organisation(session)
    config = session.get(EventHookConfig, organisation.id)
    return event_hooks.describe(config, base_url=settings().public_base_url, slug=organisation.slug)


def _choice(name: str, allowed: Any) -> str | None:
    value = text_param(name, max_length=32)
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value


def _has_body() -> bool:
    return bool(request.get_data(cache=True))
