"""The cut-off reaper does not depend on one queue's worker: beat asks for it on the urgent
queue and on the default one, so with only a default-queue worker up a due cut-off is still
re-driven (issue 20)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from models.actions import cutoffs
from models.entities import KeyCutoff
from tests.support import factories as f
from tests.support.wait import wait_until
from tests.support.worker import spawn_worker, start_shifted, stop_all, wait_ready
from worker.celery_app import beat_schedule, celery_app, urgent_queue

GATEWAY_PATH = "/gateway/v1/internal/cache/invalidate"


def test_beat_asks_for_the_reaper_on_the_urgent_and_on_the_default_queue(settings):
    reaps = [e for e in beat_schedule(settings).values() if e["task"] == "cutoffs.reap"]

    queues = {
        celery_app.amqp.router.route(dict(entry["options"]), "cutoffs.reap")["queue"].name
        for entry in reaps
    }

    assert queues == {settings.celery_queue, urgent_queue(settings.celery_queue)}


def test_with_only_a_default_queue_worker_up_a_due_cutoff_is_still_redriven(
    session, settings, httpserver, tmp_path: Path
):
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    own = settings.model_copy(
        update={
            "celery_queue": f"{settings.celery_queue}-default-only",
            "cutoff_reap_interval": 0.5,
        }
    )
    org = f.make_org(session)
    key = f.make_key(session, org, owner=f.make_user(session, org))
    # A cut-off whose fast path never ran (its message lost): only a reaper can drive it.
    cutoffs.open_cutoffs(
        session,
        organisation_id=org.id,
        key_ids=[key.id],
        command="key.revoke",
        reason="lost message",
        via_store=False,
    )
    session.commit()

    # No urgent worker; the beat starts while the worker does, and both stop together.
    started = [spawn_worker(own, log_dir=tmp_path, queues=[own.celery_queue])]
    try:
        started += start_shifted(own, log_dir=tmp_path, offset=0.0, roles=["beat"])
        wait_ready(started[0])

        def acknowledged():
            with session.get_bind().connect() as connection:
                return connection.scalar(
                    select(KeyCutoff.acknowledged_at).where(KeyCutoff.key_id == key.id)
                )

        wait_until(acknowledged, timeout=30, what="the cut-off re-driven by the default queue")
    finally:
        stop_all(started)
    calls = [r for r, _ in httpserver.log if r.path == GATEWAY_PATH]
    assert any(str(key.id) in r.get_json()["key_ids"] for r in calls)
