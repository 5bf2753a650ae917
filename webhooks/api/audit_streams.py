"""Admin API: the organisation's audit log streams to a SIEM (admins only)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint
from pydantic import Field

from models.actions import audit_streams as streams
from models.enums import StreamPreset
from models.outbound_targets import resolved_ahead
from webhooks.api.described import takes_body
from webhooks.auth import admin_actor, current_admin
from webhooks.body import RequestBody, parse_body
from webhooks.context import db_session, nothing_held_while_calling, settings

bp = Blueprint("audit_streams", __name__, url_prefix="/api/v1")


class CreateStream(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    preset: StreamPreset = Field(strict=False)
    target: str = Field(min_length=1, max_length=2000)
    splunk_token: str | None = Field(default=None, min_length=1, max_length=200)
    batch_size: int = Field(default=500, ge=1, le=5000)
    from_beginning: bool = False


class EditStream(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    target: str | None = Field(default=None, min_length=1, max_length=2000)
    batch_size: int | None = Field(default=None, ge=1, le=5000)
    enabled: bool | None = None


@bp.get("/audit-streams")
def index() -> dict[str, Any]:
    """The organisation's audit log streams, with cursor and failures (Organisation Admin)"""
    viewer = current_admin()
    items = streams.list_streams(db_session(), viewer.organisation_id)
    return {"items": [streams.stream_view(s) for s in items]}


@bp.post("/audit-streams")
@takes_body(CreateStream)
def create() -> tuple[dict[str, Any], int]:
    """Add a stream (generic NDJSON or Splunk HEC); its signing secret is shown once"""
    viewer = current_admin()
    body = parse_body(CreateStream)
    nothing_held_while_calling()  # the target's name is resolved first
    names = resolved_ahead(settings().outbound_policy(), body.target)
    session = db_session()
    stream, secret = streams.create_stream(
        session,
        organisation_id=viewer.organisation_id,
        name=body.name,
        preset=body.preset,
        target=body.target,
        splunk_token=body.splunk_token,
        batch_size=body.batch_size,
        from_beginning=body.from_beginning,
        url_policy=names,
        secret_key=settings().secret_key,
        actor=admin_actor(viewer),
    )
    session.commit()
    return {**streams.stream_view(stream), "signing_secret": secret}, 201


@bp.get("/audit-streams/<uuid:stream_id>")
def show(stream_id: uuid.UUID) -> dict[str, Any]:
    """One audit log stream"""
    viewer = current_admin()
    return streams.stream_view(streams.get_stream(db_session(), viewer.organisation_id, stream_id))


@bp.patch("/audit-streams/<uuid:stream_id>")
@takes_body(EditStream)
def edit(stream_id: uuid.UUID) -> dict[str, Any]:
    """Rename, re-target, resize batches, pause or resume a stream"""
    viewer = current_admin()
    body = parse_body(EditStream)
    nothing_held_while_calling()  # the target's name is resolved first
    names = resolved_ahead(settings().outbound_policy(), body.target)
    session = db_session()
    stream = streams.get_stream(session, viewer.organisation_id, stream_id)
    stream = streams.update_stream(
        session,
        stream=stream,
        actor=admin_actor(viewer),
        url_policy=names,
        **body.model_dump(exclude_none=True),
    )
    session.commit()
    return streams.stream_view(stream)


@bp.delete("/audit-streams/<uuid:stream_id>")
def delete(stream_id: uuid.UUID) -> tuple[str, int]:
    """Remove a stream"""
    viewer = current_admin()
    session = db_session()
    streams.delete_stream(
        session,
        stream=streams.get_stream(session, viewer.organisation_id, stream_id),
        actor=admin_actor(viewer),
    )
    session.commit()
    return "", 204
