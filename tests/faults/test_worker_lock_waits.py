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
from models.actions.identities import link_identity
from models.entities import (
    AuditEvent,
    Organisation,
    ReceivedDelivery,
    Revocation,
    User,
    VirtualApiKey,
)
from models.enums import Source, UserStatus
from tests.events import okta_payloads as okta
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
            seen_waiting[0] = max(seen_waiting[0], len(waiting_drains(engine)))
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


OKTA_ID = "00u1lockwait00000000"


@pytest.fixture
def colleague(session, person):
    """Her Okta identity, and a colleague the event is not about, with a key: the fault must
    not touch the colleague."""
    org = session.get_one(Organisation, person.organisation_id)
    other = f.make_user(session, org, email="colleague@lockwait.test")
    key = f.make_key(session, org, owner=other)
    link_identity(session, user=person, source=Source.OKTA, external_id=OKTA_ID, actor=f.SETUP)
    session.commit()
    return other.id, key.id


def waiting_drains(engine) -> list[int]:
    """The backends of this database waiting on a lock (on her row: this test's own data)
    while holding an organisation's turn (an advisory lock): the drain's batch. Not the
    mass-change gate's short transaction beside it, which waits on her row too (for a
    second) before the batch does."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND pid IN (SELECT pid FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted)"
                )
            )
        )


def terminate(engine, pids: list[int]) -> None:
    """Terminate these backends, gone on return."""
    with engine.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def test_an_okta_drain_whose_backend_is_terminated_mid_batch_applies_once_on_its_retry(
    own, sessions, engine, person, colleague, admin_holds_her, tmp_path
):
    """The drain of an Okta deactivation loses its database connection in the middle of its
    batch (its backend terminated while it waits on her row, the turn's connection with it):
    nothing of the batch is kept, the drain is retried, and once her row is free the
    deactivation is applied once, audited once, and nobody else is touched."""
    worker = start_worker(
        own,
        log_dir=tmp_path,
        concurrency=2,
        extra_env={"WORKER_DATABASE_LOCK_TIMEOUT": "3600"},  # it waits until terminated
    )
    try:
        target = okta.user_target(OKTA_ID, EMAIL)
        with sessions() as session:
            idp_events.accept_delivery(
                session,
                organisation_id=person.organisation_id,
                channel="okta",
                delivery_id="okta-1",
                payload=okta.delivery(okta.event("user.lifecycle.deactivate", [target])),
            )
            session.commit()
        (batch,) = wait_until(
            lambda: waiting_drains(engine), timeout=60, what="the drain's batch on her row"
        )
        terminate(engine, [batch])
        wait_until(
            lambda: set(waiting_drains(engine)) - {batch},
            timeout=60,
            what="the drain retried, back on her row",
        )
        with sessions() as fresh:
            assert fresh.get_one(User, person.id).status is UserStatus.ACTIVE  # nothing kept
        admin_holds_her.rollback()  # type: ignore[attr-defined]
        wait_until(lambda: processed(sessions, person), timeout=60, what="the drain")
    finally:
        worker.stop()

    other_id, other_key = colleague
    with sessions() as fresh:
        assert fresh.get_one(User, person.id).status is UserStatus.REVOKED
        audited = fresh.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == str(person.id))
        ).all()
        assert audited.count("user.revoked") == 1
        revocations = fresh.scalar(
            select(func.count()).select_from(Revocation).where(Revocation.user_id == person.id)
        )
        assert revocations == 1
        (delivery,) = fresh.scalars(
            select(ReceivedDelivery).where(
                ReceivedDelivery.organisation_id == person.organisation_id
            )
        )
        assert delivery.applied_count == 1
        assert fresh.get_one(User, other_id).status is UserStatus.ACTIVE
        assert fresh.get_one(VirtualApiKey, other_key).revoked is False
    assert DRAIN_RETRIED.search(worker.log())  # by Celery, later: nothing held meanwhile
    assert "raised unexpected" not in worker.log()
