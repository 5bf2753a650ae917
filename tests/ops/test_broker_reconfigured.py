"""A process configured again for another broker publishes to that one. Celery keeps its
connection and producer pools for the broker it first connected to: before, a process
configured for a test's own redis-server went on publishing to the first broker, and once
configured back, to the killed server (every publish failed: a later test's outbox message
was never sent)."""

from __future__ import annotations

import uuid

from models.settings import Settings
from tests.support.redis_server import RedisServer
from worker.celery_app import celery_app, configure_celery


def _publish(queue: str) -> None:
    with celery_app.producer_or_acquire() as producer:
        celery_app.send_task("tokens.note_expired", queue=queue, producer=producer, retry=False)


def test_configured_for_another_broker_a_process_publishes_to_it_and_back(
    settings: Settings, tmp_path
) -> None:
    configure_celery(settings)
    _publish(f"first-{uuid.uuid4().hex[:8]}")  # the pools now hold the suite's broker
    server = RedisServer(tmp_path).start()
    queue = f"own-{uuid.uuid4().hex[:8]}"
    try:
        configure_celery(settings.model_copy(update={"celery_broker_url": server.url}))
        _publish(queue)
        assert server.client().llen(queue) == 1
    finally:
        server.kill()
        configure_celery(settings)
    _publish(f"back-{uuid.uuid4().hex[:8]}")  # to the suite's broker again, not the killed one
    pool = celery_app.producer_pool.connections.connection
    assert pool.as_uri(include_password=True) == celery_app.connection_for_write().as_uri(
        include_password=True
    )
