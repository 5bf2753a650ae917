"""The time to kill access: a revocation's arrival travels with its gateway invalidation, and
the real worker observes it in `odock_time_to_kill_seconds` once the gateway acknowledges."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from models.entities import OutboxMessage, ScimUser
from models.enums import Role
from tests.scim.payloads import okta_deactivate
from tests.support import factories as f
from tests.support.relay import wait_relaying

SCIM = "application/scim+json"
GATEWAY_PATH = "/gateway/v1/internal/cache/invalidate"


def samples(client, source: str) -> float:
    """The histogram's sample count for `source`, as the web's /metrics serves it."""
    line = f'odock_time_to_kill_seconds_count{{source="{source}"}} '
    text = client.get("/metrics").get_data(as_text=True)
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


@pytest.fixture
def multiprocess_metrics(monkeypatch, metrics_dir: Path) -> None:
    """The web reads every process's figures from the directory the worker writes to."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))


def test_an_admin_revocation_is_counted_once_the_gateway_acknowledges(
    client, session, sessions, worker, httpserver, multiprocess_metrics
) -> None:
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    token = f.admin_token(session, org, admin)
    session.commit()
    before = samples(client, "admin")

    sent_at = time.time()
    response = client.post(
        f"/api/v1/users/{person.id}/revoke", headers={"Authorization": f"Bearer {token}"}
    )
    answered_at = time.time()

    assert response.status_code == 200
    job = invalidation(sessions)
    assert job["key_ids"] == [str(key.id)] and job["source"] == "admin"
    assert sent_at <= job["arrived_at"] <= answered_at
    wait_relaying(lambda: samples(client, "admin") > before, what="a time-to-kill sample")
    assert any(request.path == GATEWAY_PATH for request, _ in httpserver.log)


def test_a_scim_deactivation_is_counted_under_its_own_source(
    client, session, sessions, worker, httpserver, multiprocess_metrics
) -> None:
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    org = f.make_org(session)
    scim = {"Authorization": f"Bearer {f.scim_token(session, org)}", "Content-Type": SCIM}
    session.commit()
    created = client.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "scim.leaver@example.com",
            "active": True,
        },
        headers=scim,
    )
    assert created.status_code == 201, created.json
    scim_id = created.json["id"]
    f.make_key(session, org, owner=session.get_one(ScimUser, uuid.UUID(scim_id)).user)
    session.commit()
    before = samples(client, "scim")

    response = client.patch(f"/scim/v2/Users/{scim_id}", json=okta_deactivate(), headers=scim)

    assert response.status_code == 200, response.json
    assert invalidation(sessions)["source"] == "scim"
    wait_relaying(lambda: samples(client, "scim") > before, what="a time-to-kill sample")


def invalidation(sessions) -> dict:
    with sessions() as fresh:
        return fresh.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.task == "gateway.invalidate_keys")
        ).one()


@pytest.mark.parametrize(
    ("task", "kwargs", "queue"),
    [
        ("gateway.invalidate_keys", {"key_ids": []}, "urgent"),
        ("events.drain", {"organisation_id": "x"}, "drain"),
        ("directory.sync", {"connector_id": "x", "kind": "incremental"}, "urgent"),
        ("directory.sync", {"connector_id": "x", "kind": "full"}, "default"),
        ("reviews.open_for_revocation", {"revocation_id": "x"}, "default"),
    ],
)
def test_what_cuts_access_off_is_routed_to_the_urgent_queue_and_drains_to_their_own(
    settings, task, kwargs, queue
):
    """A drain holds its slot for a whole stream: on the urgent queue it took one of the two
    slots the invalidations it produces pass through."""
    from worker.celery_app import celery_app, drain_queue, urgent_queue

    queues = {
        "urgent": urgent_queue(settings.celery_queue),
        "drain": drain_queue(settings.celery_queue),
        "default": settings.celery_queue,
    }
    assert celery_app.amqp.router.route({}, task, (), kwargs)["queue"].name == queues[queue]


def test_serve_runs_a_worker_for_each_queue(settings):
    from cli.serve import commands
    from worker.celery_app import drain_queue, urgent_queue

    children = commands(
        settings,
        host="127.0.0.1",
        port=8000,
        web_workers=1,
        web_threads=1,
        concurrency=1,
        beat_schedule="schedule",
    )
    consumed = {
        child.name: child.command[child.command.index("-Q") + 1]
        for child in children
        if "-Q" in child.command
    }
    assert consumed == {
        "worker": settings.celery_queue,
        "urgent-worker": urgent_queue(settings.celery_queue),
        "drain-worker": drain_queue(settings.celery_queue),
    }


def observed(source: str) -> float:
    """This process's `odock_time_to_kill_seconds` sample count for `source`."""
    from worker.time_to_kill import TIME_TO_KILL

    return sum(
        sample.value
        for metric in TIME_TO_KILL.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels.get("source") == source
    )


def test_a_revocation_the_reaper_invalidates_first_is_counted_once(
    session, sessions, httpserver, monkeypatch
) -> None:
    """Under a backlog the reaper (cutoffs.reap) calls the gateway for a fresh cut-off before
    the invalidation task queued for it runs; that task then claims nothing. The sample used to
    be observed only by the task's own acknowledged call, so it was lost (573-868 of 1,000
    counted in benchmarks/time_to_kill.py); the clock now travels with the cut-off."""
    from models.actions import lifecycle
    from models.actor import Actor
    from models.arrival import arrived
    from models.enums import Source
    from worker.celery_app import celery_app
    from worker.tasks import cutoffs, gateway

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)  # the task waits
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    arrived_at = time.time() - 2
    with arrived(arrived_at):
        lifecycle.revoke(session, user=person, actor=Actor(Source.EVENTS, "events event hook"))
    session.commit()
    job = invalidation(sessions)
    before = observed("events")

    assert cutoffs.reap() == 1  # the reaper gets there first
    gateway.invalidate_keys(**job)  # then the task: nothing left to claim
    cutoffs.reap()

    assert observed("events") == before + 1
    assert any(request.path == GATEWAY_PATH for request, _ in httpserver.log)


def test_revocations_arriving_together_are_counted_each_once(
    session, sessions, httpserver, monkeypatch
) -> None:
    """An LDAP run's revocations share the run's start as their arrival (an Okta delivery's
    events, the delivery's), and since one invalidation carries a transaction's keys, one
    gateway call acknowledges them together. Clocks were told apart by source and arrival
    only, so such revocations were one sample (2 of 10 LDAP revocations counted in
    benchmarks/time_to_kill.py, one per sync); a person's several keys stay one sample."""
    from models.actions import lifecycle
    from models.actor import Actor
    from models.arrival import arrived
    from models.enums import Source
    from worker.celery_app import celery_app
    from worker.tasks import gateway

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)  # run by hand below
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    org = f.make_org(session)
    people = [f.make_user(session, org) for _ in range(3)]
    for person in people:
        f.make_key(session, org, owner=person)
    f.make_key(session, org, owner=people[0])  # a second key: still one revocation
    with arrived(time.time() - 1):
        for person in people:
            lifecycle.revoke(session, user=person, actor=Actor(Source.LDAP, "directory sync"))
    session.commit()
    job = invalidation(sessions)
    assert len(job["key_ids"]) == 4  # one gateway call for the transaction's keys
    before = observed("ldap")

    gateway.invalidate_keys(**job)

    assert observed("ldap") == before + 3
