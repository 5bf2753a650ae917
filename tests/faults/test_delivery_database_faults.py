"""A notification hook delivery whose worker loses its database connections while the
receiver holds the POST (every backend of the run's database terminated from inside the
receiver's handler, so the send has happened and its outcome is not yet recorded), with a
real worker and a real HTTP receiver. The delivery is recorded delivered once, and a receiver
that gets it again gets it with the same `webhook-id` (docs/reviews.md: a receiver dedupes on
it), never a new one.
PostgreSQL only (the embedded database's outage is tests/faults/test_task_database_retries.py's).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from werkzeug import Request, Response

from models.entities import AuditEvent, NotificationDelivery
from models.enums import DeliveryStatus, Role
from models.notifications import TASK_DISPATCH
from models.settings import Settings
from tests.support import factories as f
from tests.support.db_outage import terminate_every_backend
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, purge_queues, start_worker
from worker.celery_app import celery_app

# The delivery's lease is 3 x this + 30 s: the retry's wait. Longer than the receiver's
# terminating every backend takes on a loaded machine, or the send times out before the
# fault (a failed attempt, retried, never the outcome lost that this test is about).
NOTIFICATION_TIMEOUT = 5.0


@pytest.fixture(scope="module", autouse=True)
def on_postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating backends is PostgreSQL's")


@pytest.fixture(scope="module")
def worker(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    purge_queues(settings)
    process = start_worker(
        settings,
        log_dir=Path(tmp_path_factory.mktemp("worker")),
        concurrency=1,
        extra_env={
            "NOTIFICATION_TIMEOUT": str(NOTIFICATION_TIMEOUT),
            "NOTIFICATION_RETRY_BASE": "0.5",
            "NOTIFICATION_RETRY_MAX": "1",
            "OUTBOUND_ALLOW_LOOPBACK": "true",
        },
    )
    yield process
    process.stop()


def test_a_delivery_whose_connections_die_while_the_receiver_holds_it_is_recorded_once(
    worker, session, sessions, settings, engine, httpserver
):
    received: list[dict[str, str]] = []
    lock = threading.Lock()

    def receiver(request: Request) -> Response:
        with lock:
            received.append(dict(request.headers))
            first = len(received) == 1
        if first:
            terminate_every_backend(engine)  # the worker's, mid-task, and everyone else's
            engine.dispose()  # this process's own (the test's polling) too
        return Response("ok", status=200)

    httpserver.expect_request("/hooks/siem").respond_with_handler(receiver)
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    f.make_hook(
        session,
        org.id,
        httpserver.url_for("/hooks/siem"),
        secret_key=settings.secret_key,
        name="siem",
        events=[],
    )
    session.commit()

    celery_app.send_task(
        TASK_DISPATCH,
        kwargs={
            "event_id": str(uuid.uuid4()),
            "organisation_id": str(org.id),
            "event": "mass_change.held",
            "payload": {"count": 120, "action": "deactivate"},
            "recipient_user_ids": [str(admin.id)],
        },
    )

    def delivered() -> NotificationDelivery | None:
        try:
            return delivered_now()
        except OperationalError:  # this poll's own connection, terminated with the others
            return None

    def delivered_now() -> NotificationDelivery | None:
        with sessions() as fresh:
            return fresh.scalars(
                select(NotificationDelivery).where(
                    NotificationDelivery.organisation_id == org.id,
                    NotificationDelivery.hook_id.is_not(None),
                    NotificationDelivery.status == DeliveryStatus.DELIVERED,
                )
            ).one_or_none()

    delivery = wait_until(delivered, timeout=120, what="the hook delivery recorded delivered")
    assert "raised unexpected" not in worker.log()
    # The worker holds no transaction (and so no connection) while it sends: the backends
    # terminated meanwhile were idle in its pool, which replaces them when the outcome is
    # recorded. Before, its transaction stayed open across the send, the outcome was lost
    # (task.database_unavailable_retrying) and it was sent again after the lease. Either way
    # the receiver sees one webhook-id.
    ids = {headers.get("Webhook-Id") for headers in received}
    assert len(ids) == 1 and None not in ids, received
    with sessions() as fresh:
        audited = fresh.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == str(delivery.id))
        ).all()
    assert len(audited) == len(set(audited)), audited  # no event of the delivery twice
