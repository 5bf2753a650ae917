"""A worker SIGKILLed (with its pool) while a notification hook's receiver holds its POST: the
delivery was claimed (a lease of NOTIFICATION_TIMEOUT x 3 + 30 s) and its outcome never
recorded. Once the dead worker's lease has run out, the outbox relay sends the task again and
the next worker delivers it: recorded delivered once, and the receiver, which may have acted on
the first POST, gets the same message again (the same body and webhook id to dedupe on), not
a new one.

The lease and the relay's wait for a message never completed (OUTBOX_REDISPATCH_AFTER) are
waited out by a worker and a beat whose clocks run ahead (tests/support/shifted_clock.py).

In a module of its own: its workers are the only ones consuming its queue."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.entities import DeliveryAttempt, NotificationDelivery
from models.enums import DeliveryStatus
from models.notifications import notify
from models.settings import Settings
from tests.support import factories as f
from tests.support.held_receiver import held_receiver
from tests.support.wait import wait_until
from tests.support.worker import start_shifted, start_worker, stop_all

pytestmark = pytest.mark.slow


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """This test's queue, and a beat relaying often."""
    from worker.celery_app import configure_celery

    own = settings.model_copy(
        update={"celery_queue": f"{settings.celery_queue}-hookkill", "outbox_relay_interval": 0.5}
    )
    configure_celery(own)
    yield own
    configure_celery(settings)


def test_a_worker_killed_while_the_receiver_holds_the_post_is_delivered_once_by_the_next(
    own, session, sessions, settings, tmp_path
):
    with held_receiver() as receiver:
        org = f.make_org(session)
        f.make_hook(session, org.id, receiver.url, secret_key=settings.secret_key)
        doomed = start_worker(own, log_dir=tmp_path, concurrency=1)
        try:
            event_id = notify(
                session, organisation_id=org.id, event="review.opened", payload={"review_id": None}
            )
            session.commit()
            assert receiver.arrived.wait(60), "the delivery never reached the receiver"
            os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its pool, mid-POST
            doomed.process.wait(timeout=10)
        finally:
            doomed.kill()
        receiver.answer.set()  # it answers again (the first answer finds nobody listening)
        assert _delivery(sessions, event_id).status is DeliveryStatus.PENDING

        lease = own.notification_timeout * 3 + 30
        ahead = lease + own.outbox_redispatch_after + 60
        later = start_shifted(own, log_dir=tmp_path, offset=ahead, roles=("worker", "beat"))
        try:
            wait_until(
                lambda: _delivery(sessions, event_id).status is DeliveryStatus.DELIVERED,
                timeout=60,
                what="the delivery, sent again by the next worker",
            )
        finally:
            stop_all(later)
        bodies = list(receiver.bodies)

    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the same message, not a new one
    delivery = _delivery(sessions, event_id)
    with sessions() as fresh:
        oks = fresh.scalars(
            select(DeliveryAttempt.ok).where(DeliveryAttempt.delivery_id == delivery.id)
        ).all()
    assert oks.count(True) == 1


def _delivery(sessions, event_id: str) -> NotificationDelivery:
    with sessions() as fresh:
        return fresh.scalars(
            select(NotificationDelivery).where(NotificationDelivery.event_id == event_id)
        ).one()
