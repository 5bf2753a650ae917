"""A drain batch's revocations reach the gateway in one invalidation, each key keeping its own
time-to-kill clock (its cut-off's source and arrival)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import outbox
from models.actions import cutoffs, idp_events
from models.base import utcnow
from models.entities import KeyCutoff, OutboxMessage, ReceivedDelivery
from models.enums import UserStatus
from models.key_changes import TASK_INVALIDATE_KEYS
from tests.events.conftest import generic
from tests.support import factories as f


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch) -> list[str]:
    """The test runs the drain itself: tasks are recorded, not sent (no worker drains first)."""
    from worker.celery_app import celery_app

    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    return sent


def invalidations(session) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.task == TASK_INVALIDATE_KEYS)
            .order_by(OutboxMessage.id)
        )
    )


def test_a_batch_of_revocations_is_one_invalidation_and_each_key_keeps_its_arrival(session):
    """A refused event in the batch sends it round again carefully (savepoints rolled back):
    the message of the first pass must not survive, nor lose or repeat a key."""
    org = f.make_org(session)
    people = [f.make_user(session, org, email=f"p{n}@example.com") for n in range(3)]
    keys = [f.make_key(session, org, owner=person) for person in people]
    f.make_user(session, org, email="ada@example.com")
    f.make_user(session, org, email="taken@example.com")
    sends = {
        "p0-leaves": generic("user.deactivated", user={"email": "p0@example.com"}),
        "ada-clashes": generic(
            "user.updated",
            user={"email": "ada@example.com"},
            changes={"email": "taken@example.com"},
        ),
        "p1-leaves": generic("user.deactivated", user={"email": "p1@example.com"}),
        "p2-leaves": generic("user.deactivated", user={"email": "p2@example.com"}),
    }
    for delivery_id, event in sends.items():
        idp_events.accept_delivery(
            session,
            organisation_id=org.id,
            channel="events",
            delivery_id=delivery_id,
            payload=event,
        )
    session.flush()
    start = utcnow() - timedelta(seconds=30)
    arrivals = {}
    for n, delivery in enumerate(
        session.scalars(select(ReceivedDelivery).order_by(ReceivedDelivery.received_at))
    ):
        delivery.received_at = start + timedelta(seconds=n)
        arrivals[delivery.delivery_id] = delivery.received_at.timestamp()
    session.commit()

    idp_events.process_received(session, idp_events.claim_received(session, org.id))
    session.flush()

    assert [person.status for person in people] == [UserStatus.REVOKED] * 3
    [message] = invalidations(session)
    assert message.kwargs["key_ids"] == [str(key.id) for key in keys]
    assert message.kwargs["source"] == "events"
    rows = session.scalars(select(KeyCutoff).where(KeyCutoff.key_id.in_([k.id for k in keys])))
    clocks = {row.key_id: (row.source, row.arrived_at) for row in rows}
    expected = ["p0-leaves", "p1-leaves", "p2-leaves"]
    assert [clocks[key.id] for key in keys] == [
        ("events", pytest.approx(arrivals[d])) for d in expected
    ]
    # What the task observes once the gateway acknowledged: one clock per revocation.
    acknowledged = cutoffs.acknowledge(
        session, key_ids=[key.id for key in keys], called_at=utcnow(), at=utcnow()
    )
    assert [c.arrived_at for c in acknowledged] == pytest.approx([arrivals[d] for d in expected])
    published = outbox.take_eager_messages(session) + outbox.take_new_messages(session)
    assert [m.id for m in published].count(message.id) == 1


def test_the_next_transaction_starts_a_new_invalidation(session):
    """A batch's message is never extended once committed (it may be on its way already)."""
    org = f.make_org(session)
    people = [f.make_user(session, org, email=f"p{n}@example.com") for n in range(2)]
    keys = [f.make_key(session, org, owner=person) for person in people]
    session.commit()
    for n in range(2):
        idp_events.accept_delivery(
            session,
            organisation_id=org.id,
            channel="events",
            delivery_id=f"leaves-{n}",
            payload=generic("user.deactivated", user={"email": f"p{n}@example.com"}),
        )
        session.commit()
        idp_events.process_received(session, idp_events.claim_received(session, org.id))
        session.commit()

    assert [m.kwargs["key_ids"] for m in invalidations(session)] == [[str(k.id)] for k in keys]


def test_a_large_transaction_splits_its_invalidation_into_bounded_messages(session):
    """An LDAP plan revoking thousands in one transaction: every extension rewrites the
    message at the next flush, so one growing message would be written over and over."""
    for n in range(outbox.BATCHED_ITEMS_MAX + 5):
        outbox.enqueue_batched(
            session, TASK_INVALIDATE_KEYS, batch=("revoked",), lists={"key_ids": [f"k{n}"]}
        )
        session.flush()
    session.commit()

    sizes = [len(m.kwargs["key_ids"]) for m in invalidations(session)]
    assert sizes == [outbox.BATCHED_ITEMS_MAX, 5]
