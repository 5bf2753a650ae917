"""A Redis blip while a task waits out a retry countdown: the worker survives and goes on.

kombu 5.7.0 with redis-py 8.x crashed the worker here (`AttributeError: 'NoneType' object has
no attribute 'hostname'` in the restore of unacknowledged messages); worker/redis_broker.py
carries the fix. This test runs a real worker on a redis-server of its own and kills that
server while the worker holds a delivery whose retry is 30 s away.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from models.entities import NotificationDelivery
from models.settings import Settings
from tests.support import factories as f
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, send_notification, start_worker
from worker.celery_app import urgent_queue


@pytest.fixture
def blip_settings(settings: Settings, blip_redis: RedisServer) -> Settings:
    return settings.model_copy(
        update={
            "celery_broker_url": blip_redis.url,
            "celery_queue": f"blip-{uuid.uuid4().hex[:8]}",
            "notification_retry_base": 30.0,
            "notification_retry_max": 30.0,
        }
    )


@pytest.fixture
def blip_worker(blip_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = start_worker(blip_settings, log_dir=tmp_path)
    yield process
    process.stop()


def deliveries(sessions, event: str) -> list[NotificationDelivery]:
    with sessions() as fresh:
        return [d for d in fresh.scalars(select(NotificationDelivery)) if d.event == event]


def test_worker_survives_a_redis_blip_while_a_retry_is_pending(
    session, sessions, settings, httpserver, blip_settings, blip_redis, blip_worker
):
    httpserver.expect_oneshot_request("/hooks/blip").respond_with_data("down", status=503)
    httpserver.expect_request("/hooks/blip").respond_with_data("ok")
    org = f.make_org(session)
    f.make_hook(
        session,
        org.id,
        httpserver.url_for("/hooks/blip"),
        secret_key=settings.secret_key,
        name="siem",
        events=[],
    )
    session.commit()

    send_notification(blip_settings, org.id, "blip.before")
    wait_until(
        lambda: "Retry in 30" in blip_worker.log(),
        timeout=120,
        what=f"the delivery waiting out its retry; worker log:\n{blip_worker.log_path}",
    )
    assert [d.attempts for d in deliveries(sessions, "blip.before")] == [1]

    blip_redis.kill()
    wait_until(lambda: "Connection to broker lost" in blip_worker.log(), what="the lost broker")
    blip_redis.start()
    wait_until(
        lambda: blip_worker.log().count("Connected to redis") >= 2, what="the worker reconnected"
    )

    assert blip_worker.process.poll() is None, blip_worker.log()
    assert "Unrecoverable error" not in blip_worker.log()
    send_notification(blip_settings, org.id, "blip.after")
    wait_until(
        lambda: any(d.delivered_at for d in deliveries(sessions, "blip.after")),
        timeout=60,
        what="a delivery after the blip",
    )
    assert urgent_queue(blip_settings.celery_queue) in blip_worker.log()
