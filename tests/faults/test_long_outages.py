"""Outages that outlast odock-sync's own clocks, on `odock-sync serve` (web, workers, beat) with
a redis-server of its own and the stand-in gateway:

- the broker paused (SIGSTOP) for longer than OUTBOX_REDISPATCH_AFTER while admins revoke
  three people: the requests answer at once, /readyz says the broker is degraded, and once
  the broker answers again (SIGCONT) every key reaches the gateway once: the web's writes
  Redis reads late, the relay's re-sends of the stale messages and the reaper all go through
  the cut-offs' leases, so the re-sends are no invalidation storm;
- the gateway asking to be left alone (429 or 503 with Retry-After): the next call waits as
  long as it asked, at most CUTOFF_RETRY_MAX, and the wait shows in /metrics and on the
  cut-off (its last error names the Retry-After). Before, the Retry-After was ignored: the
  reaper called again after CUTOFF_RETRY_BASE (0.5 s here), into a gateway shedding load.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from models.entities import AuditEvent, KeyCutoff, RevocationReview, User
from models.enums import UserStatus
from models.settings import Settings
from tests.support import cutoff_faults as faults
from tests.support.odock import OdockStandIn
from tests.support.redis_server import RedisServer
from tests.support.served import Served, start_served
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

REDISPATCH_AFTER = 2.0  # OUTBOX_REDISPATCH_AFTER: the pause below lasts more than twice this
RETRY_MAX = 5.0  # CUTOFF_RETRY_MAX: the longest a Retry-After is honoured
ASKED = 3  # seconds of the gateway's Retry-After, within RETRY_MAX
LEAVERS = 3


@pytest.fixture(scope="module")
def served(
    settings: Settings,
    engine,
    stand_in: OdockStandIn,
    broker: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    env = faults.served_env(
        stand_in, secret_key=settings.secret_key, queue=f"long-{uuid.uuid4().hex[:8]}"
    )
    env |= {
        "OUTBOX_REDISPATCH_AFTER": str(REDISPATCH_AFTER),
        "BROKER_PUBLISH_TIMEOUT": "1",
        "CUTOFF_RETRY_MAX": str(RETRY_MAX),
    }
    process = start_served(
        workdir=Path(tmp_path_factory.mktemp("served")),
        database_url=settings.database_url,
        broker_url=broker.url,
        env=env,
    )
    # /readyz is the web's; the faults must find every worker consuming, as in production.
    for worker in ("worker@", "urgent@", "drain@"):
        wait_until(
            lambda worker=worker: re.search(rf"{worker}\S* ready\.", process.log()),
            timeout=180,
            what=f"{worker} to be ready",
        )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def healthy(stand_in: OdockStandIn) -> Iterator[None]:
    stand_in.reset()
    yield
    assert stand_in.contract.take() == []


def test_the_broker_paused_past_the_redispatch_interval_cuts_each_key_off_once(
    session, sessions, served, stand_in, broker
):
    leavers = [faults.make_leaver(session) for _ in range(LEAVERS)]
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        answered = []
        for leaver in leavers:
            sent = time.time()
            started = time.monotonic()
            # A request held by the paused broker fails here (the client's timeout).
            response = requests.post(
                f"{served.url}/api/v1/users/{leaver.user_id}/revoke",
                headers={"Authorization": f"Bearer {leaver.token}"},
                timeout=10,
            )
            answered.append((response.status_code, time.monotonic() - started, sent))
        ready = requests.get(f"{served.url}/readyz", timeout=10)
        with sessions() as fresh:
            cut_off = {
                fresh.get_one(User, leaver.user_id).status for leaver in leavers
            }  # in the database before the broker answers
        # Past the redispatch interval, twice over: the relay's due re-sends wait on the broker
        # too, and go out when it answers.
        time.sleep(2 * REDISPATCH_AFTER + 1)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)

    assert [status for status, _took, _sent in answered] == [200] * LEAVERS
    assert ready.status_code == 200 and "broker" in ready.json()["degraded"]
    assert cut_off == {UserStatus.REVOKED}
    for leaver, answer in zip(leavers, answered, strict=True):
        faults.wait_effective(stand_in, leaver)
        outcome = faults.outcome(served, stand_in, sessions, leaver, answer)
        faults.assert_each_key_invalidated_once(outcome)
        # Not one call more: the gateway was up, so each key was asked for once.
        assert {k: len(stand_in.invalidations.times_for(k)) for k in leaver.key_ids} == (
            dict.fromkeys(leaver.key_ids, 1)
        )
    with sessions() as fresh:
        for leaver in leavers:
            reviews = fresh.scalar(
                select(func.count())
                .select_from(RevocationReview)
                .where(RevocationReview.user_id == leaver.user_id)
            )
            revoked = fresh.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.action == "user.revoked",
                    AuditEvent.target_id == str(leaver.user_id),
                )
            )
            assert (reviews, revoked) == (1, 1)


def answers_for(stand_in: OdockStandIn, key_id: str) -> list[tuple[float, int]]:
    with stand_in.invalidations.lock:
        return [(at, status) for at, ids, status in stand_in.invalidations.answers if key_id in ids]


def test_a_gateway_asking_to_wait_is_called_again_no_sooner(session, sessions, served, stand_in):
    leaver = faults.make_leaver(session, keys=1)
    (key,) = leaver.key_ids
    stand_in.gateway_faults.throttled = [(429, str(ASKED)), (503, str(ASKED))]

    answered = faults.revoke(served, leaver)
    faults.wait_effective(stand_in, leaver)

    answers = answers_for(stand_in, key)
    assert [status for _at, status in answers] == [429, 503, 200]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(answers)]
    # Each call after the gateway's answer waited what it asked (the reaper's tick more at
    # most); with only the backoff it came 0.5 s and 1 s later.
    assert all(gap >= ASKED - 0.1 for gap in gaps), gaps
    outcome = faults.outcome(served, stand_in, sessions, leaver, answered)
    assert {k: len(t) for k, t in outcome.effective.items()} == {key: 1}


def test_a_gateway_asking_for_a_day_is_called_again_after_the_retry_cap_and_the_lag_shows(
    session, sessions, served, stand_in
):
    leaver = faults.make_leaver(session, keys=1)
    (key,) = leaver.key_ids
    stand_in.gateway_faults.throttled = [(429, "86400")]

    answered = faults.revoke(served, leaver)

    def waiting() -> KeyCutoff | None:
        with sessions() as fresh:
            cutoff = fresh.scalars(
                select(KeyCutoff).where(KeyCutoff.key_id == uuid.UUID(key))
            ).one_or_none()
            return cutoff if cutoff is not None and cutoff.last_error else None

    cutoff = wait_until(waiting, timeout=60, what="the cut-off told to wait")
    refused_at = answers_for(stand_in, key)[0][0]
    metrics = served.get("/metrics").text
    # Bounded: not a day, CUTOFF_RETRY_MAX after the answer (not the 0.5 s of the backoff).
    waits = cutoff.next_attempt_at.timestamp() - refused_at
    assert RETRY_MAX - 1 <= waits <= RETRY_MAX + 1, waits
    assert cutoff.last_error == "gateway answered 429 (Retry-After 86400 s)"
    assert gauge(metrics, "odock_invalidations_pending") >= 1
    assert gauge(metrics, "odock_invalidation_oldest_pending_seconds") > 0

    faults.wait_effective(stand_in, leaver)
    outcome = faults.outcome(served, stand_in, sessions, leaver, answered)
    assert {k: len(t) for k, t in outcome.effective.items()} == {key: 1}
    assert [status for _at, status in answers_for(stand_in, key)] == [429, 200]


def gauge(text: str, name: str) -> float:
    (line,) = [row for row in text.splitlines() if row.startswith(f"{name} ")]
    return float(line.split()[-1])
