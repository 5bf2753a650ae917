"""A cut-off through faults, end to end: `odock-sync serve` (web, workers, beat) on a
redis-server of its own, the stand-in gateway, and one fault per test. Each asserts that every
key was invalidated exactly once (one call the gateway answered 200 for it), and that it was
in time or the admins were alarmed (CUTOFF_DEADLINE, short here).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from models.entities import OutboxMessage
from models.settings import Settings
from tests.support import cutoff_faults as faults
from tests.support.odock import OdockStandIn
from tests.support.redis_server import RedisServer
from tests.support.served import Served, start_served

pytestmark = pytest.mark.slow

# What the broker-down revocation's answer time tells apart: a request that retried its
# publishes on the dead broker (kombu's retries took about 6 s a message, 12 s for this
# revocation's two, before BROKER_TRANSPORT_OPTIONS' max_retries=0 in worker/celery_app.py)
# from one that did not (0.1-0.9 s on this shared machine). A bound at one message's retries,
# not a latency: a loaded machine's slow answer is not a retry (latency is benchmarks/').
RETRIES_OF_ONE_PUBLISH = 6.0
# Reaper ticks the gateway stays down once the alarm is out: each could have alarmed again.
TICKS_DOWN_AFTER_THE_ALARM = 8


@pytest.fixture(scope="module")
def served(
    settings: Settings,
    engine,
    stand_in: OdockStandIn,
    broker: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    env = faults.served_env(
        stand_in, secret_key=settings.secret_key, queue=f"faults-{uuid.uuid4().hex[:8]}"
    )
    process = start_served(
        workdir=Path(tmp_path_factory.mktemp("served")),
        database_url=settings.database_url,
        broker_url=broker.url,
        env=env,
    )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def healthy(stand_in: OdockStandIn, broker: RedisServer) -> Iterator[None]:
    """A clean stand-in and broker; afterwards, what odock-sync sent kept its document."""
    stand_in.reset()
    if broker.process is None:
        broker.start()
    yield
    assert stand_in.contract.take() == []


def assert_one_effective_invalidation_per_key_in_time_or_alarmed(
    outcome: faults.Outcome,
) -> None:
    faults.assert_each_key_invalidated_once(outcome)
    assert outcome.time_to_acknowledged <= faults.DEADLINE or outcome.alarms


def test_a_redis_blip_while_a_retry_is_pending(
    session, sessions, settings, served, stand_in, broker, httpserver
):
    httpserver.expect_request("/hooks/siem").respond_with_data("down", status=503)
    leaver = faults.make_leaver(
        session, hook_url=httpserver.url_for("/hooks/siem"), secret_key=settings.secret_key
    )

    outcome = faults.redis_blip_during_a_pending_retry(served, stand_in, broker, sessions, leaver)

    assert outcome.answered_status == 200
    assert outcome.web_answers_during_fault and set(outcome.web_answers_during_fault) == {200}
    assert served.process.poll() is None
    assert "Unrecoverable error" not in served.log()
    assert_one_effective_invalidation_per_key_in_time_or_alarmed(outcome)


def test_the_urgent_worker_killed_during_the_gateway_call(session, sessions, served, stand_in):
    leaver = faults.make_leaver(session)

    outcome = faults.worker_killed_during_the_gateway_call(served, stand_in, sessions, leaver)

    assert outcome.answered_status == 200
    assert "restarting urgent-worker" in served.log()
    assert_one_effective_invalidation_per_key_in_time_or_alarmed(outcome)


def test_the_gateway_down_past_the_deadline_alarms_once_and_the_review_waits(
    session, sessions, served, stand_in
):
    leaver = faults.make_leaver(session)
    seen: dict[str, object] = {}

    def while_down() -> None:
        from tests.support.wait import wait_until

        wait_until(lambda: pending_finding(served, leaver), timeout=60, what="the review, pending")
        seen["finding"] = pending_finding(served, leaver)
        seen["finding_read_at"] = time.time()
        wait_until(lambda: alarmed(sessions), timeout=60, what="the alarm")
        seen["metric"] = gauge(served, "odock_cutoffs_past_deadline")
        time.sleep(TICKS_DOWN_AFTER_THE_ALARM * faults.REAP_INTERVAL)  # no second alarm

    # The outage ends after the alarm and these reaper ticks more (gateway_down's `outage` is
    # the least it lasts; waiting for the alarm takes longer).
    outcome = faults.gateway_down(
        served, stand_in, sessions, leaver, outage=faults.DEADLINE, while_down=while_down
    )

    assert_one_effective_invalidation_per_key_in_time_or_alarmed(outcome)
    (alarm,) = outcome.alarms  # once for the incident, though the outage went on
    assert alarm.after["keys_overdue"] == 2 and alarm.after["severity"] == "urgent"
    assert alarm.after["oldest_age_seconds"] >= faults.DEADLINE  # not before the deadline
    (recovered,) = outcome.recoveries
    assert recovered.after["incident_id"] == alarm.after["incident_id"]
    finding = seen["finding"]
    assert isinstance(finding, dict)
    assert finding["state"] == "open" and finding["invalidation_status"] == "pending"
    pending_for = finding["invalidation_pending_seconds"]  # pending since the revocation
    assert 0 <= pending_for <= float(seen["finding_read_at"]) - outcome.revoked_at + 1
    assert seen["metric"] == 2
    assert alarmed(sessions) == ["cutoff.deadline_missed", "cutoff.recovered"]
    review = reviews_of(served, leaver)[0]
    assert review["status"] == "resolved"


def test_the_broker_down_during_an_admin_revocation(session, sessions, served, stand_in, broker):
    leaver = faults.make_leaver(session)

    outcome = faults.broker_down_during_the_revocation(served, stand_in, broker, sessions, leaver)

    assert outcome.answered_status == 200
    # Not held by retries on the dead broker (12 s before, kombu retrying per message)
    assert outcome.answered_in < RETRIES_OF_ONE_PUBLISH
    assert_one_effective_invalidation_per_key_in_time_or_alarmed(outcome)
    assert reviews_of(served, leaver)  # the outbox carried the review's task too


def reviews_of(served: Served, leaver: faults.Leaver) -> list[dict]:
    from tests.support.wait import wait_until

    def listed() -> list[dict]:
        response = served.get(
            f"/api/v1/reviews?user_id={leaver.user_id}",
            headers={"Authorization": f"Bearer {leaver.token}"},
        )
        return response.json()["items"] if response.status_code == 200 else []

    return wait_until(listed, timeout=60, what="the review")


def pending_finding(served: Served, leaver: faults.Leaver) -> dict | None:
    items = reviews_of(served, leaver)
    detail = served.get(
        f"/api/v1/reviews/{items[0]['id']}", headers={"Authorization": f"Bearer {leaver.token}"}
    ).json()
    keys = [f for f in detail["findings"] if f["kind"] == "user_key"]
    return keys[0] if keys and keys[0]["invalidation_status"] == "pending" else None


def alarmed(sessions) -> list[str]:
    with sessions() as fresh:
        events = [
            kwargs["event"]
            for kwargs in fresh.scalars(
                select(OutboxMessage.kwargs)
                .where(OutboxMessage.task == "notifications.dispatch")
                .order_by(OutboxMessage.id)
            )
        ]
    return [e for e in events if e.startswith("cutoff.")]


def gauge(served: Served, name: str) -> float:
    text = served.get("/metrics").text
    (line,) = [row for row in text.splitlines() if row.startswith(f"{name} ")]
    return float(line.split()[-1])
