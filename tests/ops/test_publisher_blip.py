"""The web's publishing thread keeps one broker producer between publishes: through a Redis
restart it hands what it could not publish back to the relay, and then publishes again, to a
real worker that runs it. The web and the worker run as processes of their own on a
redis-server of this test's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.entities import OutboxMessage
from models.settings import Settings
from tests.support import cutoff_faults as faults
from tests.support.redis_server import RedisServer
from tests.support.served import web_alone
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, settings_env, start_worker

pytestmark = pytest.mark.slow

GATEWAY_PATH = "/gateway/v1/internal/cache/invalidate"


@pytest.fixture
def blip_settings(settings: Settings, blip_redis: RedisServer) -> Settings:
    return settings.model_copy(
        update={
            "celery_broker_url": blip_redis.url,
            "celery_queue": f"publisher-blip-{uuid.uuid4().hex[:8]}",
            "outbox_publish_in_background": True,  # the web's publishing thread, as deployed
            "broker_publish_timeout": 2.0,
        }
    )


@pytest.fixture
def blip_worker(blip_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = start_worker(blip_settings, log_dir=tmp_path)
    yield process
    process.stop()


@pytest.fixture
def web(blip_settings: Settings, tmp_path: Path) -> Iterator[str]:
    with web_alone(settings_env(blip_settings), tmp_path) as url:
        yield url


EAGER_TASKS = ("gateway.invalidate_keys", "reviews.open_for_revocation")


def revoke(sessions, url: str, leaver: faults.Leaver) -> list[int]:
    """Revoke through the web; the ids of the two messages the revocation committed, both
    published eagerly (the tasks they run may enqueue more under the same request id)."""
    response = requests.post(
        f"{url}/api/v1/users/{leaver.user_id}/revoke",
        headers={"Authorization": f"Bearer {leaver.token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    with sessions() as fresh:
        query = select(OutboxMessage.id).where(
            OutboxMessage.request_id == response.headers["X-Request-Id"],
            OutboxMessage.task.in_(EAGER_TASKS),
        )
        ids = list(fresh.scalars(query))
    assert len(ids) == 2, ids
    return ids


def messages(sessions, ids: list[int]) -> list[OutboxMessage]:
    with sessions() as fresh:
        return list(fresh.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))))


def run_by_the_worker(sessions, ids: list[int]) -> bool:
    """Published once, after commit, and run: nothing relays on this test's broker."""
    return all(m.completed_at and m.attempts == 1 for m in messages(sessions, ids))


def test_the_publishing_thread_publishes_again_after_a_broker_restart(
    session, sessions, httpserver, blip_redis, blip_worker, web
):
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    leavers = [faults.make_leaver(session) for _ in range(3)]

    before = revoke(sessions, web, leavers[0])
    wait_until(lambda: run_by_the_worker(sessions, before), what="the first revocation's tasks")

    blip_redis.kill()
    during = revoke(sessions, web, leavers[1])

    def handed_back() -> bool:
        return all(
            m.dispatched_at is None and m.last_error and m.completed_at is None
            for m in messages(sessions, during)
        )

    wait_until(handed_back, timeout=60, what="the publishes during the blip handed back")

    blip_redis.start()
    wait_until(
        lambda: blip_worker.log().count("Connected to redis") >= 2, what="the worker reconnected"
    )
    after = revoke(sessions, web, leavers[2])
    wait_until(lambda: run_by_the_worker(sessions, after), what="the tasks after the blip")
