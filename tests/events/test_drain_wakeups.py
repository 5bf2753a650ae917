"""Wake-up flags with a real worker on PostgreSQL and Redis: every delivery stored after a
drain's last look wakes a drain at once, instead of finding a flag up that nothing will lower
and waiting for the beat's sweep (a dropped wake-up is silent). The flag is raised and lowered
in one Redis database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from models.actions import idp_events
from models.entities import ReceivedDelivery
from tests.events.conftest import generic
from tests.support import factories as f
from tests.support.wait import wait_until
from tests.support.worker import start_worker

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
