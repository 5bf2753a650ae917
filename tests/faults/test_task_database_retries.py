"""A task that finds the database unavailable, with a real worker: it is retried with backoff
and its work is done once the database is back (here: the admins' alert of a mass
deactivation, fanned out by `notifications.dispatch`, reaches their mailbox). An outage that
outlasts TASK_DATABASE_RETRIES, and a database error that is a bug, fail without retrying
for ever.

The outage: on PostgreSQL the run's database refuses connections (ALLOW_CONNECTIONS false on
the run's own database) and every backend on it, the worker's included, is terminated; on the
embedded SQLite a writer holds the database past the worker's busy timeout. On PostgreSQL a
revocation's review whose backend is terminated while it works opens on the retry too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from models.actions import lifecycle
from models.actions.reviews import review_of
from models.db import make_session_factory
from models.entities import NotificationDelivery, Revocation
from models.enums import Role
from models.notifications import TASK_DISPATCH
from models.settings import Settings
from tests.support import factories as f
from tests.support.db_outage import refusing_connections
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, purge_queues, start_worker
from worker.celery_app import celery_app

RETRIES = 3
ADMIN = "admin@outage.test"


@pytest.fixture(scope="module")
def worker(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    purge_queues(settings)
    process = start_worker(
        settings,
        log_dir=Path(tmp_path_factory.mktemp("worker")),
        concurrency=1,
        extra_env={"TASK_DATABASE_RETRIES": str(RETRIES), "SQLITE_BUSY_TIMEOUT": "0.3"},
    )
    yield process
    process.stop()


@pytest.fixture
def admin(session):
    org = f.make_org(session)
    user = f.make_user(session, org, role=Role.ORG_ADMIN, email=ADMIN)
    session.commit()
    return user


@pytest.fixture
def outage(
    settings: Settings, engine: Engine, dropping_connections: None
) -> AbstractContextManager[None]:
    if engine.dialect.name == "postgresql":
        return refusing_connections(settings, engine)
    return locked(engine)


@contextmanager
def locked(engine: Engine) -> Iterator[None]:
    """Another writer holds the embedded database (every transaction takes the write lock)."""
    with engine.connect() as holder:
        holder.begin()
        holder.execute(text("SELECT 1"))
        yield
        holder.rollback()


def dispatch_alert(admin) -> str:
    """What a mass deactivation held at its gate asks for: an alert to the admins."""
    sent = celery_app.send_task(
        TASK_DISPATCH,
        kwargs={
            "event_id": str(uuid.uuid4()),
            "organisation_id": str(admin.organisation_id),
            "event": "mass_change.held",
            "payload": {"count": 120, "action": "deactivate"},
            "recipient_user_ids": [str(admin.id)],
        },
    )
    return str(sent.id)


def retries(worker: WorkerProcess, task_id: str) -> int:
    return worker.log().count(f"[{task_id}] retry:")


def failed(worker: WorkerProcess, task_id: str) -> bool:
    return f"[{task_id}] raised unexpected" in worker.log()


def planned(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(NotificationDelivery)) or 0


def test_an_alert_dispatched_while_the_database_is_down_goes_out_once_it_is_back(
    worker, admin, outage, mailbox
):
    with outage:
        task_id = dispatch_alert(admin)
        wait_until(lambda: retries(worker, task_id) >= 1, what="the dispatch retried")
    wait_relaying(lambda: mailbox.to(ADMIN), what="the admin's alert")
    assert not failed(worker, task_id)


def test_an_outage_longer_than_the_retries_fails_the_task_after_them(
    worker, admin, outage, sessions
):
    with outage:
        task_id = dispatch_alert(admin)
        wait_until(lambda: failed(worker, task_id), what="the dispatch given up")
        assert retries(worker, task_id) == RETRIES
    assert planned(sessions) == 0  # failed, not done behind our back


def test_a_database_error_that_is_a_bug_fails_at_once(worker, admin, engine, sessions):
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE notification_deliveries RENAME TO deliveries_away"))
    try:
        task_id = dispatch_alert(admin)
        wait_until(lambda: failed(worker, task_id), what="the dispatch failing")
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("ALTER TABLE deliveries_away RENAME TO notification_deliveries")
            )
    assert retries(worker, task_id) == 0
    assert planned(sessions) == 0


def test_a_review_whose_connection_is_terminated_while_it_works_opens_on_the_retry(
    worker, engine, clean_db
):
    if engine.dialect.name != "postgresql":
        pytest.skip("a backend to terminate mid-statement is PostgreSQL's (SQLite: above)")
    quiet = make_session_factory(engine)  # publishes nothing: the test sends the task itself
    with quiet() as session:
        person = f.make_user(session, f.make_org(session))
        revocation = lifecycle.revoke(session, user=person, actor=f.SETUP)
        session.commit()
    with quiet() as blocker:
        blocker.execute(select(Revocation).where(Revocation.id == revocation.id).with_for_update())
        sent = celery_app.send_task(
            "reviews.open_for_revocation", kwargs={"revocation_id": str(revocation.id)}
        )
        waiting = wait_until(lambda: lock_waiter(engine), what="the task waiting on the lock")
        with engine.connect() as server:
            server.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
        blocker.rollback()
    wait_until(lambda: retries(worker, str(sent.id)) >= 1, what="the task retried")
    with quiet() as session:
        wait_until(lambda: review_of(session, revocation.id), what="the review opened")


def lock_waiter(engine: Engine) -> int | None:
    with engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
