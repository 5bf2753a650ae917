"""A notification hook whose receiver takes the request and never answers (a hung server
behind a load balancer that keeps the connection open), with a real worker of one slot: each
attempt ends at NOTIFICATION_TIMEOUT as a failed attempt and is retried with backoff; the slot
is not held meanwhile (another hook's delivery, queued behind it, goes out); once the
receiver answers again the delivery lands once and is not sent again.

In a module of its own: its worker (one slot, a short timeout) is the only one consuming its
queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.entities import DeliveryAttempt, NotificationDelivery, NotificationHook
from models.enums import DeliveryStatus
from models.notifications import notify
from models.settings import Settings
from tests.support import factories as f
from tests.support.held_receiver import held_receiver
from tests.support.relay import wait_relaying
from tests.support.worker import start_worker

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # NOTIFICATION_TIMEOUT of the worker under test


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    """Settings with a queue of this test's own, published to from here meanwhile."""
    from worker.celery_app import configure_celery

    own = settings.model_copy(
        update={"celery_queue": f"{settings.celery_queue}-hang", "notification_timeout": TIMEOUT}
    )
    configure_celery(own)
    yield own
    configure_celery(settings)


def test_a_receiver_that_never_answers_holds_no_slot_and_gets_the_delivery_once_it_does(
    own, session, sessions, settings, tmp_path
):
    worker = start_worker(own, log_dir=tmp_path, concurrency=1)
    try:
        with held_receiver() as hung, held_receiver() as healthy:
            healthy.answer.set()
            org = f.make_org(session)
            for name, receiver in (("hung", hung), ("healthy", healthy)):
                f.make_hook(
                    session, org.id, receiver.url, secret_key=settings.secret_key, name=name
                )
            event_id = notify(
                session, organisation_id=org.id, event="review.opened", payload={"review_id": None}
            )
            session.commit()

            # The one slot went on to the healthy hook while the hung one waits out its retry.
            wait_relaying(
                lambda: _status(sessions, event_id, "healthy") is DeliveryStatus.DELIVERED,
                what="the healthy hook's delivery",
            )
            wait_relaying(
                lambda: len(_attempts(sessions, event_id, "hung")) >= 2,
                what="the hung hook's delivery tried again",
            )
            assert _status(sessions, event_id, "hung") is DeliveryStatus.PENDING
            hung.answer.set()  # the receiver answers again
            wait_relaying(
                lambda: _status(sessions, event_id, "hung") is DeliveryStatus.DELIVERED,
                what="the hung hook's delivery, once it answers",
            )
            sent_to_hung = hung.received()
        assert healthy.received() == 1
    finally:
        worker.stop()

    attempts = _attempts(sessions, event_id, "hung")
    assert [ok for ok, _ in attempts].count(True) == 1 and attempts[-1][0]
    assert all(error == "NotAnsweredInTime" for ok, error in attempts if not ok), attempts
    assert sent_to_hung == len(attempts)  # each attempt one POST, none after it landed
    with sessions() as fresh:
        hook = fresh.scalars(select(NotificationHook).where(NotificationHook.name == "hung")).one()
        assert hook.enabled and hook.consecutive_failures == 0


def _delivery(session, event_id: str, hook_name: str) -> NotificationDelivery | None:
    """None until the event is fanned out."""
    return session.scalars(
        select(NotificationDelivery)
        .join(NotificationHook, NotificationHook.id == NotificationDelivery.hook_id)
        .where(NotificationDelivery.event_id == event_id, NotificationHook.name == hook_name)
    ).one_or_none()


def _status(sessions, event_id: str, hook_name: str) -> DeliveryStatus | None:
    with sessions() as fresh:
        delivery = _delivery(fresh, event_id, hook_name)
        return None if delivery is None else delivery.status


def _attempts(sessions, event_id: str, hook_name: str) -> list[tuple[bool, str | None]]:
    with sessions() as fresh:
        delivery = _delivery(fresh, event_id, hook_name)
        if delivery is None:
            return []
        rows = fresh.execute(
            select(DeliveryAttempt.ok, DeliveryAttempt.error)
            .where(DeliveryAttempt.delivery_id == delivery.id)
            .order_by(DeliveryAttempt.attempted_at)
        )
        return [(ok, error) for ok, error in rows]
