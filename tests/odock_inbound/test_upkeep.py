"""Upkeep of the inbound bridge: a failed reconcile tried again with backoff before the next
interval, by a real worker; tombstones purged after their retention (docs/odock.md)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from werkzeug import Request, Response

from models.actions import odock_objects, odock_reconcile
from models.base import utcnow
from models.entities import AuditEvent, OdockReconcileRun, OdockTombstone, VirtualApiKey
from tests.odock_inbound.conftest import key_body
from tests.support import factories as f
from tests.support.wait import wait_until
from tests.support.worker import start_worker


def test_the_backoff_doubles_stops_after_the_retries_and_never_reaches_the_next_run(settings):
    tuned = settings.model_copy(
        update={
            "odock_reconcile_retry_base": 30.0,
            "odock_reconcile_retries": 4,
            "odock_reconcile_interval": 200.0,
        }
    )
    waits = [odock_reconcile.retry_in(tuned, retries) for retries in range(6)]
    assert waits == [30.0, 60.0, 120.0, None, None, None]  # 240 s would pass the next run


def test_a_failed_reconcile_is_tried_again_before_the_next_interval(
    bridged, session, engine, httpserver, settings, tmp_path: Path
):
    key_id = uuid.uuid4()
    answered: list[int] = []

    def keys(request: Request) -> Response:
        status = 500 if len(answered) < 2 else 200  # down for the first two attempts
        answered.append(status)
        if status == 500:
            return Response("down", status=500)
        item = {"id": str(key_id), **key_body(bridged.owner)}
        listed = {"items": [item], "next_cursor": None}
        return Response(json.dumps(listed), content_type="application/json")

    def empty(request: Request) -> Response:
        listed = {"items": [], "next_cursor": None}
        return Response(json.dumps(listed), content_type="application/json")

    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_handler(keys)
    for kind in ("budgets", "quotas"):
        httpserver.expect_request(f"/mgmt/v1/sync/{kind}").respond_with_handler(empty)
    tuned = settings.model_copy(
        update={
            "odock_mode": "bridged",
            "odock_management_url": httpserver.url_for("/mgmt"),
            "odock_management_token": "mgmt-token",
            "odock_reconcile_retry_base": 0.2,
            "odock_reconcile_interval": 3600.0,
            "celery_queue": f"{settings.celery_queue}-reconcile",
        }
    )
    from worker.celery_app import configure_celery
    from worker.tasks.odock_reconcile import reconcile_organisation

    configure_celery(tuned)
    worker = start_worker(tuned, log_dir=tmp_path)
    try:
        reconcile_organisation.delay(str(bridged.org.id))

        def statuses() -> list[str] | None:
            with engine.connect() as connection:
                found = connection.scalars(
                    select(OdockReconcileRun.status).order_by(OdockReconcileRun.started_at)
                ).all()
            return list(found) if "succeeded" in found else None

        runs = wait_until(statuses, timeout=30, what="a successful retry")
    finally:
        worker.stop()
        configure_celery(settings)

    assert runs == ["incomplete", "incomplete", "succeeded"]
    assert answered == [500, 500, 200]
    assert session.get(VirtualApiKey, key_id) is not None


def test_tombstones_older_than_the_retention_are_purged_and_audited(session):
    org, other = f.make_org(session), f.make_org(session)
    now = utcnow()
    old = [
        OdockTombstone(organisation_id=o.id, kind="key", object_id=uuid.uuid4(), version=1)
        for o in (org, org, other)
    ]
    fresh = OdockTombstone(organisation_id=org.id, kind="key", object_id=uuid.uuid4(), version=1)
    for tombstone in old:
        tombstone.deleted_at = now - timedelta(days=31)
    fresh.deleted_at = now - timedelta(days=1)
    session.add_all([*old, fresh])
    session.flush()

    purged = odock_objects.purge_tombstones(session, older_than=now - timedelta(days=30))

    assert purged == 3
    assert [t.object_id for t in session.scalars(select(OdockTombstone))] == [fresh.object_id]
    audits = {
        event.organisation_id: event.after
        for event in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "odock.tombstones_purged")
        )
    }
    assert {k: v["purged"] for k, v in audits.items()} == {org.id: 2, other.id: 1}


def test_beat_purges_tombstones_in_every_mode(settings):
    from worker.celery_app import beat_schedule

    assert beat_schedule(settings)["odock-tombstones-purge"]["task"] == "odock.purge_tombstones"
