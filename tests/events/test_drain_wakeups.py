"""Wake-up flags with a real worker on PostgreSQL and Redis: every delivery stored after a
drain's last look wakes a drain at once, instead of finding a flag up that nothing will lower
and waiting for the beat's sweep (a dropped wake-up is silent). The flag is raised and lowered
in one Redis database, and a drain that dies or fails mid-run leaves none up."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from models.actions import idp_events
from models.entities import ReceivedDelivery, User
from tests.events.conftest import generic
from tests.support import factories as f
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, start_worker
from worker import turns

EMAIL = "jane@faults.test"
DRAIN_RETURNED = re.compile(r"events\.drain\[[^\]]+\] succeeded")


@pytest.fixture
def own(settings):
    """Settings with a queue of this test's own, which this process publishes to meanwhile
    (the flags are named by the queue too)."""
    from worker.celery_app import configure_celery

    if not settings.celery_broker_url.startswith("redis"):
        pytest.skip("wake-up flags live in Redis (the embedded broker sends every wake-up)")
    own = settings.model_copy(update={"celery_queue": f"{settings.celery_queue}-drainfaults"})
    configure_celery(own)
    yield own
    configure_celery(settings)


@pytest.fixture
def org(session):
    org = f.make_org(session)
    f.make_user(session, org, email=EMAIL)
    session.commit()
    return org


@pytest.fixture
def blocked(sessions, engine, org) -> Iterator[object]:
    """Jane's row locked: a drain applying an event about her waits inside its batch."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a drain is held mid-batch on a row lock (SQLite locks the whole file)")
    blocker = sessions()
    blocker.execute(select(User).where(User.email == EMAIL).with_for_update())
    yield blocker
    blocker.rollback()
    blocker.close()


def deliver(sessions, org, delivery_id: str, event_type: str) -> None:
    """Store a delivery as the receiver does; the commit wakes the organisation's drain."""
    with sessions() as session:
        idp_events.accept_delivery(
            session,
            organisation_id=org.id,
            channel="events",
            delivery_id=delivery_id,
            payload={"events": [generic(event_type, user={"email": EMAIL})]},
        )
        session.commit()


def statuses(sessions, org) -> dict[str, str]:
    with sessions() as fresh:
        rows = fresh.execute(
            select(ReceivedDelivery.delivery_id, ReceivedDelivery.status).where(
                ReceivedDelivery.organisation_id == org.id
            )
        )
        return {delivery_id: status for delivery_id, status in rows}


def all_processed(sessions, org, *delivery_ids: str) -> bool:
    return statuses(sessions, org) == dict.fromkeys(delivery_ids, "processed")


def flag_up(org) -> bool:
    from worker import wakeups

    flags = wakeups._flags(wakeups._broker_url())
    assert flags is not None
    key = wakeups._flag_key(idp_events.TASK_DRAIN, {"organisation_id": str(org.id)})
    return bool(flags.exists(key))


def waiting_on_a_lock(session) -> bool:
    session.connection().execute(text("SELECT pg_stat_clear_snapshot()"))
    waiting = session.connection().execute(
        text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    )
    return bool(waiting.scalar())


def drain_blocked(worker: WorkerProcess, blocker) -> None:
    wait_until(lambda: "events.drain[" in worker.log(), what="the drain taken by the worker")
    wait_until(lambda: waiting_on_a_lock(blocker), what="the drain waiting on Jane's row")


def test_a_delivery_after_a_drain_returned_wakes_another_whatever_the_environment_names(
    sessions, own, org, tmp_path, monkeypatch
):
    """CELERY_BROKER_URL naming another Redis database than the settings (a pytest-xdist
    worker's run has a database of its own; its environment still names the first), which
    Celery's `broker_url` prefers: the receiver's process raised its flags there while the
    workers lowered theirs in the settings' database, so after a first delivery every other
    one for 30 s was dropped unless the first drain was still running to see it."""
    configured = own.celery_broker_url.rsplit("/", 1)
    elsewhere = f"{configured[0]}/{(int(configured[1] or 0) + 8) % 16}"
    monkeypatch.setenv("CELERY_BROKER_URL", elsewhere)
    worker = start_worker(own, log_dir=tmp_path)
    try:
        deliver(sessions, org, "first", "user.deactivated")
        wait_until(lambda: all_processed(sessions, org, "first"), what="the first drain")
        wait_until(lambda: DRAIN_RETURNED.search(worker.log()), what="the first drain returning")

        deliver(sessions, org, "second", "user.reactivated")
        wait_until(lambda: all_processed(sessions, org, "first", "second"), what="the drain")
    finally:
        worker.stop()
    drains = worker.log().count("Task events.drain[")
    assert drains == 4  # two woken, each received and succeeded: none left to the sweep


def test_a_drain_killed_mid_run_leaves_no_flag_and_the_next_delivery_wakes_a_drain(
    sessions, own, org, blocked, tmp_path
):
    doomed = start_worker(own, log_dir=tmp_path, concurrency=1)
    try:
        deliver(sessions, org, "first", "user.deactivated")
        drain_blocked(doomed, blocked)
        os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its pool, mid-batch
        doomed.process.wait(timeout=10)
    finally:
        doomed.kill()
        blocked.rollback()  # type: ignore[attr-defined]

    assert not flag_up(org)  # it died holding the turn: nothing would take a wake-up now
    assert statuses(sessions, org) == {"first": "received"}  # its batch was rolled back
    second = start_worker(own, log_dir=tmp_path)
    try:
        deliver(sessions, org, "second", "user.reactivated")
        wait_until(lambda: all_processed(sessions, org, "first", "second"), what="the drain")
    finally:
        second.stop()


def end_the_turns_connection(engine, org) -> None:
    """The backend holding the organisation's drain turn terminated (a failover, an
    idle-session timeout)."""
    with engine.connect() as admin:
        holder = admin.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid::text::bigint * 4294967296 + objid::text::bigint = :key"
            ),
            {"key": turns.key_of(org.id) & 0xFFFFFFFFFFFFFFFF},  # the oids are unsigned
        )
        assert holder is not None
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
    # pg_terminate_backend only signals the backend: its locks go when it has exited, which on
    # a loaded machine is not at once.
    wait_until(lambda: not _backend_alive(engine, holder), what="the turn's backend gone")


def _backend_alive(engine, pid: int) -> bool:
    with engine.connect() as fresh:  # a new transaction: pg_stat_activity is a snapshot
        alive = fresh.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
    return bool(alive)


def drain_failed(worker: WorkerProcess) -> bool:
    return "raised unexpected" in worker.log() or " retry: " in worker.log()


def test_a_drain_that_lost_its_turn_applies_nothing_beside_the_next_holder(
    sessions, engine, own, org, blocked, tmp_path
):
    """The turn's connection ends mid-batch (a failover, an idle-session timeout): the lock
    goes with it and another drain may take the turn at once. The batch under way used to
    commit on its own connection all the same, beside the new holder's batches, so an
    organisation's events could be applied out of their order."""
    worker = start_worker(own, log_dir=tmp_path, concurrency=1)
    try:
        deliver(sessions, org, "first", "user.deactivated")
        drain_blocked(worker, blocked)
        end_the_turns_connection(engine, org)
        with engine.connect() as next_holder:
            taken = next_holder.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": turns.key_of(org.id)}
            )
            assert taken  # the lock went with its connection
            blocked.rollback()  # type: ignore[attr-defined]
            wait_until(lambda: drain_failed(worker), what="the drain that lost its turn failing")

            assert statuses(sessions, org) == {"first": "received"}
            next_holder.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": turns.key_of(org.id)}
            )
        deliver(sessions, org, "second", "user.reactivated")
        wait_until(lambda: all_processed(sessions, org, "first", "second"), what="the drain")
    finally:
        worker.stop()


def test_a_drain_that_fails_lowers_its_flag_and_is_run_again(
    sessions, engine, own, org, blocked, tmp_path
):
    """Its turn's connection dies mid-batch (a failover, an idle-session kill): the run
    fails, and used to leave its flag up for 30 s."""
    worker = start_worker(own, log_dir=tmp_path, concurrency=1)
    try:
        deliver(sessions, org, "first", "user.deactivated")
        drain_blocked(worker, blocked)
        end_the_turns_connection(engine, org)
        blocked.rollback()  # type: ignore[attr-defined]
        wait_until(lambda: all_processed(sessions, org, "first"), what="the first batch")
        wait_until(lambda: drain_failed(worker), what="the drain failing with its turn")

        assert not flag_up(org)
        deliver(sessions, org, "second", "user.reactivated")
        wait_until(lambda: all_processed(sessions, org, "first", "second"), what="the drain")
    finally:
        worker.stop()
