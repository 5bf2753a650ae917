"""An eager outbox message's publish after commit, in the web's publishing thread: its thread
CPU (`time.thread_time`) and function calls (cProfile) per message, on a queue of its own that
is dropped afterwards. No database: nothing fails, so nothing is handed back.

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 python benchmarks/eager_publish.py \\
        [--messages 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import queue
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.entities import OutboxMessage
from models.settings import Settings
from worker import outbox_relay
from worker.celery_app import bound_publishing, configure_celery

PROFILED = 100


def review_message(message_id: int) -> OutboxMessage:
    """What a SCIM deactivation publishes: the review of the person's revocation."""
    return OutboxMessage(
        id=message_id,
        task="reviews.open_for_revocation",
        kwargs={"revocation_id": str(uuid.uuid4())},
        request_id=secrets.token_hex(16),
    )


def in_the_publishing_thread(job: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    done: queue.Queue[tuple[float, float]] = queue.Queue()
    outbox_relay._PUBLISHER.submit(lambda: done.put(job()))
    return done.get(timeout=600)


def publish_each(messages: list[OutboxMessage]) -> None:
    for message in messages:
        outbox_relay.publish_eager(None, [message])  # type: ignore[arg-type]  # never handed back


def measure(count: int) -> tuple[float, float]:
    """Thread CPU in µs and function calls, per message."""
    ids = iter(range(1, 10**9))
    publish_each([review_message(next(ids)) for _ in range(50)])  # warm
    messages = [review_message(next(ids)) for _ in range(count)]
    started = time.thread_time()
    publish_each(messages)
    cpu = (time.thread_time() - started) / count * 1e6
    messages = [review_message(next(ids)) for _ in range(PROFILED)]
    profile = cProfile.Profile()
    profile.runcall(publish_each, messages)
    return cpu, pstats.Stats(profile).total_calls / PROFILED  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    name = f"odock-publish-bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(celery_broker_url=url, celery_queue=name, secret_key=secrets.token_hex(16))
    configure_celery(settings)
    bound_publishing(settings.broker_publish_timeout)
    print(f"load average {os.getloadavg()[0]:.1f}")
    try:
        for _ in range(args.rounds):
            cpu, calls = in_the_publishing_thread(lambda: measure(args.messages))
            print(f"{cpu:.0f} µs thread CPU, {calls:.0f} function calls per message")
    finally:
        if url.startswith(("redis://", "rediss://")):
            broker = redis.Redis.from_url(url)
            for key in broker.scan_iter(f"*{name}*"):
                broker.delete(key)


if __name__ == "__main__":
    main()
