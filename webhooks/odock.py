"""The Odock bridge, inbound push (docs/odock.md): the management plane upserts and deletes
keys, budgets and quotas, pushes usage and sends signed change events. A token of scope
`odock` names the organisation; every error is problem JSON."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, g, request
from sqlalchemy.orm import Session

from connectors import signed_webhooks
from models.actions import (
    idp_events,
    leaver_checks,
    odock_bridge,
    odock_events,
    odock_objects,
    odock_usage,
)
from models.actions.odock_objects import SCHEMAS
from models.actions.tokens import TokenGrant
from models.actor import Actor
from models.entities import OutboxMessage
from models.enums import Source, TokenScope
from models.errors import InvalidInput, NotFound
from webhooks.auth import require_token
from webhooks.body import json_body, read_body
from webhooks.context import db_session, settings
from webhooks.errors import Unauthorized
from webhooks.odock_openapi import document

bp = Blueprint("odock", __name__, url_prefix="/odock/v1")

KINDS = {"keys": odock_objects.KIND_KEY, "budgets": odock_objects.KIND_BUDGET}
KINDS["quotas"] = odock_objects.KIND_QUOTA


@bp.get("/openapi.json")
def openapi_document() -> dict[str, Any]:
    return document()


@bp.before_request
def authenticate() -> None:
    if request.endpoint == "odock.openapi_document":
        return
    g.odock = require_token(TokenScope.ODOCK)


def _grant() -> TokenGrant:
    grant: TokenGrant = g.odock
    return grant


def _actor() -> Actor:
    return Actor(Source.ODOCK, f"odock token {_grant().label}")


@bp.put("/<any(keys, budgets, quotas):collection>/<uuid:object_id>")
def put_object(collection: str, object_id: uuid.UUID) -> dict[str, Any]:
    kind = KINDS[collection]
    data = SCHEMAS[kind].model_validate(_object_body())
    session = db_session()
    organisation_id = _grant().organisation_id
    done = odock_objects.upsert_object(
        session,
        organisation_id=organisation_id,
        kind=kind,
        object_id=object_id,
        data=data,
        actor=_actor(),
    )
    backstop = leaver_checks.arm_for_object(
        session, organisation_id=organisation_id, actor=_actor(), kind=kind, object_id=object_id
    )
    _commit_then_check(session, backstop)
    held = odock_objects.held_object(session, kind, object_id)
    shown = odock_objects.describe(held) if held is not None else {"id": str(object_id)}
    return {**shown, "applied": done.applied}


@bp.delete("/<any(keys, budgets, quotas):collection>/<uuid:object_id>")
def delete_object(collection: str, object_id: uuid.UUID) -> tuple[str, int]:
    session = db_session()
    odock_objects.delete_object(
        session,
        organisation_id=_grant().organisation_id,
        kind=KINDS[collection],
        object_id=object_id,
        version=odock_objects.parse_version(request.args.get("version")),
        actor=_actor(),
    )
    session.commit()
    return "", 204


@bp.post("/usage")
def post_usage() -> dict[str, Any]:
    batch = odock_usage.parse_batch(json_body())
    session = db_session()
    organisation_id = _grant().organisation_id
    ingested = odock_usage.ingest_usage(
        session, organisation_id=organisation_id, records=batch.records, actor=_actor()
    )
    usage_ids = [record.id for record in batch.records]
    backstop = leaver_checks.arm(
        session, organisation_id=organisation_id, actor=_actor(), usage_ids=usage_ids
    )
    _commit_then_check(session, backstop)
    return {"accepted": ingested.accepted, "duplicates": ingested.duplicates}


@bp.post("/events")
def post_event() -> tuple[dict[str, Any], int]:
    session = db_session()
    organisation_id = _grant().organisation_id
    secrets = odock_bridge.signing_secrets(session, organisation_id, settings().secret_key)
    if not secrets:
        raise NotFound("no signing secret is set; run `odock-sync odock secret add`")
    body = read_body()
    try:
        delivery_id = signed_webhooks.verify(
            secrets,
            body=body,
            headers=request.headers,  # type: ignore[arg-type]
            tolerance_seconds=settings().event_timestamp_tolerance,
        )
    except signed_webhooks.SignatureRejected as exc:
        raise Unauthorized(exc.reason) from None
    if len(delivery_id) > 255:
        raise InvalidInput("webhook-id must be at most 255 characters", field="webhook-id")
    payload = json_body()
    odock_events.parse_event(payload)
    recorded = idp_events.accept_delivery(
        session,
        organisation_id=organisation_id,
        channel=odock_events.CHANNEL_ODOCK,
        delivery_id=delivery_id,
        payload=payload,
    )
    session.commit()
    status = "accepted" if recorded.is_new else "duplicate"
    return {"status": status, "delivery_id": delivery_id}, 202 if recorded.is_new else 200


def _commit_then_check(session: Session, backstop: OutboxMessage | None) -> None:
    """Commit the write, then check what it wrote for leavers (models.actions.leaver_checks):
    a revocation committing meanwhile did not see it."""
    session.commit()
    if backstop is not None:
        leaver_checks.check_now(session, backstop)
        session.commit()


def _object_body() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data
