"""Storing deliveries in batches: one statement, replays recognised within and across batches."""

from __future__ import annotations

from sqlalchemy import func, select

from models.actions import idp_events
from models.actions.deliveries import Incoming
from models.entities import ReceivedDelivery
from tests.support import factories as f


def test_a_batch_stores_each_new_delivery_once_and_names_the_replays(session):
    org, other = f.make_org(session), f.make_org(session)

    def incoming(org_, delivery_id):
        return Incoming(org_.id, "events", delivery_id, {"id": delivery_id})

    connection = session.connection()
    first = idp_events.accept_deliveries(connection, [incoming(org, "a"), incoming(org, "b")])
    second = idp_events.accept_deliveries(
        connection,
        [incoming(org, "b"), incoming(org, "c"), incoming(org, "c"), incoming(other, "a")],
    )

    assert first.new == [True, True]
    assert second.new == [False, True, False, True]  # b seen before, c twice in one batch
    stored = session.execute(
        select(ReceivedDelivery.organisation_id, func.count()).group_by(
            ReceivedDelivery.organisation_id
        )
    ).all()
    assert dict(stored) == {org.id: 3, other.id: 1}
    assert first.drains_to_wake == [org.id]
    assert set(second.drains_to_wake) == {org.id, other.id}
    replays = idp_events.accept_deliveries(connection, [incoming(org, "a")])
    assert replays.new == [False] and replays.drains_to_wake == []  # nothing new: no wake-up
