"""Requests never wait on the broker (issue 20): with a broker that accepts connections and
never answers (a blackhole: a partition, a hung Redis), an admin revocation answers at its
normal latency. The web publishes after commit from a thread of its own; what it could not
publish stays in the outbox for the relay, and the reaper finds the cut-offs in the database."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.entities import OutboxMessage, User
from models.enums import UserStatus
from tests.support import cutoff_faults as faults
from tests.support.served import web_alone
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Seconds each publish waits on the blackhole before it gives up (recording why on its outbox
# message). A request that waited on the broker would answer only once its publish had given
# up (the blackhole never answers); one that did not answers before.
PUBLISH_TIMEOUT = 10.0
# How long a request may take before the test calls it hung (not a latency target: those are
# in benchmarks/).
HANG_GUARD = 120


class Blackhole:
    """A loopback TCP server that accepts every connection and never reads or answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        # A thread blocked in accept() is not woken by close() (Linux): the shutdown wakes it,
        # so the accepting thread ends with the test instead of waiting out the process.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    server = Blackhole()
    yield server
    server.close()


@pytest.fixture
def web(settings, blackhole: Blackhole, tmp_path: Path) -> Iterator[str]:
    """The web alone (what answers the admin), its broker the blackhole."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))},
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings.database_url,
        "CELERY_BROKER_URL": blackhole.url,
        "CELERY_QUEUE": f"{settings.celery_queue}-blackhole",
        "SECRET_KEY": settings.secret_key,
        "GATEWAY_URL": "http://127.0.0.1:9/gateway",  # nothing is called from the web
        "LOG_LEVEL": "WARNING",
        "BROKER_PUBLISH_TIMEOUT": str(PUBLISH_TIMEOUT),
    }
    with web_alone(env, tmp_path) as url:
        yield url


def revoke(url: str, leaver: faults.Leaver, sessions) -> tuple[int, bool]:
    """The answer's status, and whether the publish of the revocation's invalidation had
    given up on the broker by the time it came."""
    response = requests.post(
        f"{url}/api/v1/users/{leaver.user_id}/revoke",
        headers={"Authorization": f"Bearer {leaver.token}"},
        timeout=HANG_GUARD,
    )
    return response.status_code, _publish_given_up(sessions, leaver)


def _publish_given_up(sessions, leaver: faults.Leaver) -> bool:
    with sessions() as fresh:
        (message,) = [
            m
            for m in fresh.scalars(
                select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
            )
            if sorted(m.kwargs["key_ids"]) == sorted(leaver.key_ids)
        ]
        return message.last_error is not None


def test_admin_revocations_answer_in_normal_time_with_the_broker_blackholed(
    session, sessions, web, blackhole
):
    leavers = [faults.make_leaver(session) for _ in range(3)]

    answers = [revoke(web, leaver, sessions) for leaver in leavers]

    assert [status for status, _ in answers] == [200, 200, 200]
    # None waited on the broker: each answered before its own publish had given up on it
    # (nothing queues behind the publisher in the request), however slow a loaded machine.
    assert [given_up for _, given_up in answers] == [False, False, False], answers
    # The broker is tried from the publishing thread, after the answers: since the gateway
    # invalidation is published eagerly (no transaction first), the answers can come before
    # the thread has connected.
    wait_until(lambda: blackhole.held, timeout=30, what="the publishing thread to try the broker")
    with sessions() as fresh:
        statuses = fresh.scalars(
            select(User.status).where(User.id.in_([leaver.user_id for leaver in leavers]))
        ).all()
        kept = fresh.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.task == "gateway.invalidate_keys")
            .order_by(OutboxMessage.id)
        ).all()
    assert set(statuses) == {UserStatus.REVOKED}
    # The work is kept for the relay: nothing reached a worker.
    assert len(kept) == 3 and all(m.completed_at is None for m in kept)

    def given_up() -> bool:
        with sessions() as fresh:
            return all(
                m.last_error
                for m in fresh.scalars(
                    select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
                )
            )

    # and the publisher is not held for good: each publish gives up (BROKER_PUBLISH_TIMEOUT), so
    # the web publishes again as soon as the broker answers.
    # Three publishes in turn, each up to PUBLISH_TIMEOUT per broker read or write.
    wait_until(given_up, timeout=180, what="the publisher to give up on the blackhole")
