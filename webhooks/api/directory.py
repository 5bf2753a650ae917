"""Admin API: directory connectors, their test action, sync runs, plans and approvals."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, url_for
from pydantic import Field

from models.actions import directory_connectors as connectors
from models.directory import approvals, schedule
from models.directory import runs as sync_runs
from models.directory.connection_check import test_connection
from models.enums import SyncKind
from models.queries.directory import connector_view, list_connectors, list_runs, run_view
from webhooks.api.described import takes_body
from webhooks.api.params import int_param
from webhooks.auth import admin_actor, current_admin, current_viewer
from webhooks.body import RequestBody, json_body, no_fields, parse_body
from webhooks.context import db_session, nothing_held_while_calling, settings

bp = Blueprint("directory", __name__, url_prefix="/api/v1/directory")


class ConnectorBody(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    enabled: bool | None = None
    server_urls: list[str] | None = Field(default=None, min_length=1, max_length=10)
    start_tls: bool | None = None
    ca_file: str | None = Field(default=None, max_length=500)
    verify_tls: bool | None = None
    bind_dn: str | None = Field(default=None, max_length=500)
    bind_password: str | None = Field(default=None, max_length=1000)
    base_dn: str | None = Field(default=None, max_length=500)
    user_filter: str | None = Field(default=None, max_length=1000)
    group_base_dn: str | None = Field(default=None, max_length=500)
    group_filter: str | None = Field(default=None, max_length=1000)
    page_size: int | None = None
    # JSON numbers (strict): seconds as text ("5", " 5", "1e1") are refused; finite.
    connect_timeout: float | None = Field(default=None, allow_inf_nan=False)
    search_timeout: float | None = Field(default=None, allow_inf_nan=False)
    full_sync_minutes: int | None = None
    incremental_minutes: int | None = None
    preset: str | None = Field(default=None, max_length=32)
    attribute_mapping: dict[str, Any] | None = None
    group_teams: dict[str, str] | None = None
    group_roles: dict[str, str] | None = None
    safety: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"bind_password"})


class SyncBody(RequestBody):
    kind: SyncKind = Field(default=SyncKind.FULL, strict=False)
    dry_run: bool = False


class TestBody(RequestBody):
    username: str = Field(default="", max_length=200)


def _connector(connector_id: uuid.UUID) -> Any:
    viewer = current_admin()
    return connectors.get_connector(db_session(), viewer.organisation_id, connector_id)


@bp.get("/connectors")
def index() -> dict[str, Any]:
    viewer = current_admin()
    return {
        "items": [connector_view(c) for c in list_connectors(db_session(), viewer.organisation_id)]
    }


@bp.post("/connectors")
@takes_body(ConnectorBody)
def create() -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    body = parse_body(ConnectorBody)
    nothing_held_while_calling()  # the servers' names are resolved first
    names = connectors.resolved_ahead(body.server_urls, settings())
    session = db_session()
    connector = connectors.create_connector(
        session,
        organisation=viewer.organisation(session),
        fields=body.fields(),
        bind_password=body.bind_password,
        settings=settings(),
        actor=admin_actor(viewer),
        names=names,
    )
    session.commit()
    return connector_view(connector), 201


@bp.get("/connectors/<uuid:connector_id>")
def show(connector_id: uuid.UUID) -> dict[str, Any]:
    return connector_view(_connector(connector_id))


@bp.patch("/connectors/<uuid:connector_id>")
@takes_body(ConnectorBody)
def edit(connector_id: uuid.UUID) -> dict[str, Any]:
    connector = _connector(connector_id)
    body = parse_body(ConnectorBody)
    nothing_held_while_calling()  # the servers' names are resolved first; it is read again
    names = connectors.resolved_ahead(body.server_urls, settings())
    connector = connectors.update_connector(
        db_session(),
        connector=connector,
        fields=body.fields(),
        bind_password=body.bind_password,
        settings=settings(),
        actor=admin_actor(current_viewer()),
        names=names,
    )
    db_session().commit()
    return connector_view(connector)


@bp.delete("/connectors/<uuid:connector_id>")
def delete(connector_id: uuid.UUID) -> tuple[str, int]:
    connector = _connector(connector_id)
    connectors.delete_connector(
        db_session(), connector=connector, actor=admin_actor(current_viewer())
    )
    db_session().commit()
    return "", 204


@bp.post("/connectors/<uuid:connector_id>/test")
def test(connector_id: uuid.UUID) -> dict[str, Any]:
    connector = _connector(connector_id)
    body = TestBody.model_validate(json_body()) if _has_body() else TestBody()
    db_session().expunge(connector)
    db_session().rollback()  # no transaction stays open while the directory is read
    return test_connection(connector, settings(), username=body.username)


@bp.post("/connectors/<uuid:connector_id>/sync")
def sync(connector_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    connector = _connector(connector_id)
    body = SyncBody.model_validate(json_body()) if _has_body() else SyncBody()
    schedule.request_sync(
        db_session(),
        connector=connector,
        kind=body.kind,
        dry_run=body.dry_run,
        actor=admin_actor(current_viewer()),
    )
    db_session().commit()
    return {"queued": True, "kind": body.kind.value, "dry_run": body.dry_run}, 202


@bp.get("/connectors/<uuid:connector_id>/runs")
def runs(connector_id: uuid.UUID) -> dict[str, Any]:
    connector = _connector(connector_id)
    limit = int_param("limit", 50, low=1, high=200)
    return {"items": [run_view(r) for r in list_runs(db_session(), connector, limit=limit)]}


@bp.get("/runs/<uuid:run_id>")
def run(run_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    return run_view(sync_runs.get_run(db_session(), viewer.organisation_id, run_id), with_plan=True)


@bp.post("/runs/<uuid:run_id>/approve")
def approve(run_id: uuid.UUID) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Recorded now; a worker re-checks the plan against the directory and applies it."""
    viewer = current_admin()
    no_fields()
    session = db_session()
    found = sync_runs.get_run(session, viewer.organisation_id, run_id, for_update=True)
    approvals.request_approval(session, run=found, actor=admin_actor(viewer))
    session.commit()
    return run_view(found), 202, {"Location": url_for("directory.run", run_id=run_id)}


@bp.post("/runs/<uuid:run_id>/discard")
def discard(run_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    no_fields()
    session = db_session()
    found = sync_runs.get_run(session, viewer.organisation_id, run_id)
    approvals.discard_run(session, run=found, actor=admin_actor(viewer))
    session.commit()
    return run_view(found)


def _has_body() -> bool:
    from flask import request

    return bool(request.get_data(cache=True))
