"""A task's statement stuck behind a row lock another transaction holds, with a real worker on
PostgreSQL: an admin's session left open on a person (SELECT … FOR UPDATE, from this test's own
connection, on this test's own person) while an IdP event deactivates her.

Before: the worker's connections had no lock_timeout, so the drain waited inside its batch for
as long as the admin's transaction lasted, its worker slot and its organisation's turn held
(an admin who went to lunch held every later event of the organisation). Now its statement
fails after WORKER_DATABASE_LOCK_TIMEOUT, a transient error: the batch is rolled back, the
turn let go, and the drain is retried with backoff (TASK_DATABASE_RETRIES). The woken copies
of the drain (every delivery wakes one) never apply the organisation's events beside it: one
holder of the turn at a time, so at most one statement waits on her row. Once the admin's
transaction ends the deactivation is applied once."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from models.actions import idp_events
from models.entities import AuditEvent, ReceivedDelivery, User
from models.enums import UserStatus
from tests.events.conftest import generic
from tests.support import factories as f
from tests.support.wait import wait_until
from tests.support.worker import start_worker

EMAIL = "held@lockwait.test"
LOCK_TIMEOUT = 1.0  # WORKER_DATABASE_LOCK_TIMEOUT of the worker under test
DRAIN_RETRIED = re.compile(r"Task events\.drain\[[^\]]+\] retry:")


@pytest.fixture
def own(settings, engine):
    """Settings with a queue of this test's own (no other test's worker takes its drains)."""
    from worker.celery_app import configure_celery

    if engine.dialect.name != "postgresql":
        pytest.skip(
            "row locks are PostgreSQL's; on SQLite a writer holding the database past "
            "SQLITE_BUSY_TIMEOUT is retried the same way (tests/faults/test_task_database_retries)"
        )
    own = settings.model_copy(update={"celery_queue": f"{settings.celery_queue}-lockwait"})
    configure_celery(own)
    yield own
    configure_celery(settings)


@pytest.fixture
def person(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email=EMAIL)
    session.commit()
    return user


@pytest.fixture
def admin_holds_her(sessions, person) -> Iterator[object]:
    """An admin's transaction on her row, left open (this test's own connection and row)."""
    holder = sessions()
    holder.execute(select(User).where(User.id == person.id).with_for_update())
    yield holder
    holder.rollback()
    holder.close()


def deliver(sessions, person, delivery_id: str) -> None:
    """Store a deactivation as the receiver does; the commit wakes the organisation's drain."""
    with sessions() as session:
        idp_events.accept_delivery(
            session,
            organisation_id=person.organisation_id,
            channel="events",
            delivery_id=delivery_id,
            payload={"events": [generic("user.deactivated", user={"email": EMAIL})]},
        )
        session.commit()


def waiting_on_her(engine) -> int:
    """Row locks waited for in this database right now (hers: this test's own data)."""
    with engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE NOT l.granted AND d.datname = current_database()"
                    " AND l.locktype IN ('tuple', 'transactionid')"
                )
            )
            or 0
        )


def processed(sessions, person) -> bool:
    with sessions() as fresh:
        return set(
            fresh.scalars(
                select(ReceivedDelivery.status).where(
                    ReceivedDelivery.organisation_id == person.organisation_id
                )
            )
        ) == {"processed"}


def test_a_drain_behind_an_admins_open_transaction_retries_and_applies_once_released(
    own, sessions, engine, person, admin_holds_her, tmp_path
):
    worker = start_worker(
        own,
        log_dir=tmp_path,
        concurrency=2,
        extra_env={"WORKER_DATABASE_LOCK_TIMEOUT": str(LOCK_TIMEOUT)},
    )
    try:
        deliver(sessions, person, "first")
        # Bounded: without a lock timeout the drain waits on her row for as long as the
        # admin's transaction lasts, and never retries.
        wait_until(
            lambda: DRAIN_RETRIED.search(worker.log()),
            timeout=60,
            what="the drain to give up on the lock and be retried",
        )
        deliver(sessions, person, "second")  # wakes another drain while the first retries
        seen_waiting = [0]

        def retried_again(before: int) -> bool:
            seen_waiting[0] = max(seen_waiting[0], waiting_on_her(engine))
            return len(DRAIN_RETRIED.findall(worker.log())) > before

        for _ in range(3):
            before = len(DRAIN_RETRIED.findall(worker.log()))
            wait_until(lambda before=before: retried_again(before), timeout=60, what="a retry")
        with sessions() as fresh:
            assert fresh.get_one(User, person.id).status is UserStatus.ACTIVE  # nothing applied
        admin_holds_her.rollback()  # type: ignore[attr-defined]
        wait_until(lambda: processed(sessions, person), timeout=60, what="the drain")
    finally:
        worker.stop()

    assert seen_waiting[0] <= 1  # one drain of the organisation at a time, even while retrying
    with sessions() as fresh:
        assert fresh.get_one(User, person.id).status is UserStatus.REVOKED
        revoked = fresh.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "user.revoked", AuditEvent.target_id == str(person.id))
        )
    assert revoked == 1
    assert "raised unexpected" not in worker.log()
