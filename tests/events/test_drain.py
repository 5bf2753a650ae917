"""The drain task: an organisation's received deliveries applied in arrival order, in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models.actions import idp_events
from models.entities import ReceivedDelivery
from models.enums import UserStatus
from tests.events import okta_payloads as okta
from tests.events.test_apply import T0, okta_event, okta_user
from tests.support import factories as f


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch) -> list[str]:
    """These tests run the drain themselves: the tasks it would wake are recorded, not sent,
    so a worker started earlier in the run cannot drain the deliveries first."""
    from worker.celery_app import celery_app

    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    return sent


def receive(session, org, delivery_id, event_type, minutes=0) -> None:
    payload = okta.delivery(okta_event(event_type, published=T0 + timedelta(minutes=minutes)))
    idp_events.accept_delivery(
        session, organisation_id=org.id, channel="okta", delivery_id=delivery_id, payload=payload
    )


def receive_generic(session, org, delivery_id, event) -> None:
    idp_events.accept_delivery(
        session, organisation_id=org.id, channel="events", delivery_id=delivery_id, payload=event
    )


def flags_of(settings):
    from worker import wakeups

    return wakeups._flags(settings.celery_broker_url)


def drain_flag(org) -> str:
    from worker import wakeups

    return wakeups._flag_key("events.drain", {"organisation_id": str(org.id)})


def statuses(session, org) -> dict[str, tuple[str, str | None]]:
    rows = session.execute(
        select(
            ReceivedDelivery.delivery_id, ReceivedDelivery.status, ReceivedDelivery.outcome
        ).where(ReceivedDelivery.organisation_id == org.id)
    )
    return {delivery_id: (status, outcome) for delivery_id, status, outcome in rows}


def test_drain_applies_one_organisation_in_arrival_order_across_batches(session, monkeypatch):
    from worker.tasks.idp_events import drain_deliveries

    monkeypatch.setattr(idp_events, "DRAIN_BATCH", 2)
    org, other = f.make_org(session), f.make_org(session)
    user = okta_user(session, org)
    steps = ["deactivate", "reactivate", "deactivate", "reactivate", "deactivate"]
    for minute, step in enumerate(steps):
        receive(session, org, f"d{minute}", f"user.lifecycle.{step}", minutes=minute)
    receive(session, other, "theirs", "user.lifecycle.deactivate")
    session.commit()
    org_id = str(org.id)

    assert drain_deliveries(org_id) == 5
    session.expire_all()
    # Each applied in turn (a delivery taken out of order would be stale, not applied).
    assert statuses(session, org) == {f"d{n}": ("processed", "1 applied") for n in range(5)}
    assert user.status is UserStatus.REVOKED
    assert statuses(session, other) == {"theirs": ("received", None)}
    session.rollback()  # end the read before the task writes (SQLite)
    assert drain_deliveries(org_id) == 0  # nothing left: idempotent


def test_a_delivery_that_breaks_is_failed_and_the_others_still_apply(session, monkeypatch):
    from worker.tasks.idp_events import drain_deliveries

    org = f.make_org(session)
    user = okta_user(session, org)
    receive(session, org, "before", "user.lifecycle.deactivate", minutes=0)
    receive(session, org, "poison", "user.lifecycle.reactivate", minutes=1)
    receive(session, org, "after", "user.lifecycle.reactivate", minutes=2)
    session.commit()
    parse = idp_events._parse

    def breaks_on_poison(delivery):
        if delivery.delivery_id == "poison":
            raise RuntimeError("a bug")
        return parse(delivery)

    monkeypatch.setattr(idp_events, "_parse", breaks_on_poison)

    assert drain_deliveries(str(org.id)) == 3
    session.expire_all()
    assert statuses(session, org) == {
        "before": ("processed", "1 applied"),
        "poison": ("failed", "internal error (RuntimeError)"),
        "after": ("processed", "1 applied"),
    }
    assert user.status is UserStatus.ACTIVE


def test_deliveries_stored_while_a_drain_runs_wake_one_more_at_most(
    session, settings, monkeypatch, sent_tasks
):
    """The drain lowers its flag as it takes its turn (should it die, nothing stays up): the
    first delivery stored meanwhile wakes one more drain, which leaves it to this one, and the
    others ride on that wake-up."""
    from worker import wakeups
    from worker.tasks.idp_events import drain_deliveries

    sent = sent_tasks
    org = f.make_org(session)
    okta_user(session, org)
    receive(session, org, "first", "user.lifecycle.deactivate")
    session.commit()  # wakes the drain: the flag goes up
    wake_up = ("events.drain", {"organisation_id": str(org.id)})
    process_received = idp_events.process_received

    def deliveries_arrive_meanwhile(session_, deliveries):
        if deliveries:  # the run's first batch
            for _ in range(3):
                wakeups.wake(*wake_up)  # as the receiver does after storing one
        process_received(session_, deliveries)

    monkeypatch.setattr(idp_events, "process_received", deliveries_arrive_meanwhile)
    org_id = str(org.id)

    assert drain_deliveries(org_id) == 1
    wakeups.wake(*wake_up)  # after the run: a new one is woken
    drains = sent.count("events.drain")
    if settings.celery_broker_url.startswith("redis://"):
        assert drains == 3  # one sent while the drain ran, for three deliveries
        wakeups.taken(*wake_up)
    else:
        assert drains == 5  # no flags on this broker: every wake-up is sent


def test_a_refused_event_in_a_batch_is_undone_alone_and_the_rest_applies_once(session):
    """The batch first runs without a savepoint per event; a refusal sends it round again
    carefully, and nothing of the first pass (a half-made change, a message) survives."""
    from models import outbox
    from models.actions.lifecycle import TASK_OPEN_REVIEW
    from models.entities import OutboxMessage, Revocation
    from tests.events.conftest import generic

    org = f.make_org(session)
    ada = f.make_user(session, org, email="ada@example.com", name="Ada")
    bob = f.make_user(session, org, email="bob@example.com")
    f.make_user(session, org, email="taken@example.com")
    sends = {
        "bob-leaves": generic("user.deactivated", user={"email": "bob@example.com"}),
        "ada-clashes": generic(
            "user.updated",
            user={"email": "ada@example.com"},
            changes={"name": "Ada Lovelace", "email": "taken@example.com"},
        ),
        "bob-renamed": generic(
            "user.updated", user={"email": "bob@example.com"}, changes={"name": "Robert"}
        ),
    }
    for delivery_id, event in sends.items():
        receive_generic(session, org, delivery_id, event)
    session.commit()

    deliveries = idp_events.claim_received(session, org.id)
    idp_events.process_received(session, deliveries)
    session.flush()

    results = {d.delivery_id: (d.status, d.outcome, d.attempts) for d in deliveries}
    assert results == {
        "bob-leaves": ("processed", "1 applied", 1),
        "ada-clashes": ("processed", "1 rejected", 1),
        "bob-renamed": ("processed", "1 applied", 1),
    }
    assert (ada.name, ada.email) == ("Ada", "ada@example.com")  # no half of the clash
    assert (bob.name, bob.status) == ("Robert", UserStatus.REVOKED)
    revocation = session.scalars(select(Revocation)).one()
    reviews = session.scalars(select(OutboxMessage).where(OutboxMessage.task == TASK_OPEN_REVIEW))
    assert [message.kwargs for message in reviews] == [{"revocation_id": str(revocation.id)}]
    eager = outbox.take_eager_messages(session)  # what would be published after commit
    assert [message.kwargs for message in eager] == [{"revocation_id": str(revocation.id)}]


def drain_once(session, org) -> dict[str, list[str]]:
    """Apply what is received in one batch, as the drain does; each delivery's outcomes."""
    deliveries = idp_events.claim_received(session, org.id)
    idp_events.process_received(session, deliveries)
    session.flush()
    return {d.delivery_id: [result["outcome"] for result in d.results] for d in deliveries}


def test_in_one_batch_a_link_made_by_email_serves_the_next_event_about_that_id(session):
    from models.actions.identities import find_link
    from models.enums import Source
    from tests.events.test_apply import OKTA_ID

    org = f.make_org(session)
    user = f.make_user(session, org, email="jane.doe@example.com")
    receive(session, org, "suspended", "user.lifecycle.suspend", minutes=0)
    renamed = okta_event(
        "user.account.update_profile",
        published=T0 + timedelta(minutes=1),
        email="jane.smith@example.com",  # no longer the email she was matched by
        name="Jane Smith",
    )
    idp_events.accept_delivery(
        session,
        organisation_id=org.id,
        channel="okta",
        delivery_id="renamed",
        payload=okta.delivery(renamed),
    )
    session.commit()

    assert drain_once(session, org) == {"suspended": ["applied"], "renamed": ["applied"]}
    assert (user.status, user.email) == (UserStatus.REVOKED, "jane.smith@example.com")
    assert find_link(session, org.id, Source.OKTA, OKTA_ID).user_id == user.id


def test_in_one_batch_the_newest_event_per_aspect_wins_whatever_the_arrival_order(session):
    from tests.events.conftest import generic

    org = f.make_org(session)
    user = f.make_user(session, org, email="ada@example.com", name="Ada")
    sends = {
        "newer": ("Ada Lovelace", "2026-11-01T09:05:00+00:00"),
        "older": ("Ada King", "2026-11-01T09:00:00+00:00"),  # arrives late: stale
    }
    for delivery_id, (name, occurred_at) in sends.items():
        event = generic(
            "user.updated",
            id=f"evt-{delivery_id}",
            user={"email": "ada@example.com"},
            changes={"name": name},
            occurred_at=occurred_at,
        )
        receive_generic(session, org, delivery_id, event)
    session.commit()

    assert drain_once(session, org) == {"newer": ["applied"], "older": ["stale"]}
    assert user.name == "Ada Lovelace"


def test_in_one_batch_bad_deliveries_are_rejected_and_the_good_ones_still_apply(session):
    from tests.events.conftest import generic

    org = f.make_org(session)
    ada = f.make_user(session, org, email="ada@example.com", name="Ada")
    receive_generic(session, org, "unreadable", {"events": "not a list"})
    receive_generic(session, org, "no-time", {"id": "e1", "type": "user.deactivated"})
    receive_generic(session, org, "stranger", generic("user.deactivated", user={"email": "x@y.z"}))
    receive_generic(
        session,
        org,
        "renamed",
        generic("user.updated", user={"email": "ada@example.com"}, changes={"name": "Ada L."}),
    )
    session.commit()

    assert drain_once(session, org) == {
        "unreadable": [],
        "no-time": ["rejected"],
        "stranger": ["ignored"],
        "renamed": ["applied"],
    }
    assert statuses(session, org)["unreadable"][0] == "rejected"
    assert (ada.name, ada.status) == ("Ada L.", UserStatus.ACTIVE)


def test_a_second_drain_of_the_organisation_leaves_at_once_while_one_is_at_work(
    session, sessions, engine, settings
):
    """On both databases (SQLite used to give every drain a turn: drains ran side by side in
    both urgent slots while invalidations waited for one)."""
    from worker import turns
    from worker.tasks import idp_events as drain_task
    from worker.tasks.idp_events import drain_deliveries

    org = f.make_org(session)
    okta_user(session, org)
    receive(session, org, "waiting", "user.lifecycle.deactivate")
    session.commit()

    with turns.turn(engine, turns.key_of(org.id)) as mine:  # another drain is at work
        assert mine
        assert drain_deliveries(str(org.id)) == 0
        with sessions() as fresh:
            assert statuses(fresh, org) == {"waiting": ("received", None)}
        if flags_of(settings) is not None:  # its wake-up stays up only briefly: that one
            ttl = flags_of(settings).ttl(drain_flag(org))  # may die before it looks again
            assert 0 < ttl <= drain_task.LEAVER_FLAG_SECONDS
    assert drain_deliveries(str(org.id)) == 1


def test_the_drain_looks_again_after_letting_go_of_its_turn(session, monkeypatch):
    """A delivery stored just after the drain's last read, whose own drain left because this
    one still held the turn, is applied before this one returns."""
    from worker.tasks import idp_events as drain_task

    org = f.make_org(session)
    okta_user(session, org)
    receive(session, org, "first", "user.lifecycle.deactivate", minutes=0)
    session.commit()
    org_id = org.id
    drain = drain_task._drain
    passes: list[int] = []

    def drain_then_a_late_arrival(organisation_id, held):
        drained = drain(organisation_id, held)
        passes.append(drained)
        if len(passes) == 1:  # after the final read of the first turn
            with drain_task.runtime().sessions() as late:
                receive(late, late.get(type(org), org_id), "late", "user.lifecycle.reactivate", 1)
                late.commit()
        return drained

    monkeypatch.setattr(drain_task, "_drain", drain_then_a_late_arrival)

    assert drain_task.drain_deliveries(str(org_id)) == 2
    session.expire_all()
    assert statuses(session, org) == {
        "first": ("processed", "1 applied"),
        "late": ("processed", "1 applied"),
    }


def test_a_delivery_after_a_run_that_a_second_drain_left_wakes_a_drain_at_once(session, sent_tasks):
    """A delivery stored right after the running drain lowered the flag wakes a second drain,
    which leaves if the first still holds the turn; the flag it was woken by stays up. The
    first must not return with that flag up: the next delivery has to wake a drain at once.
    (Left up, it kept every later delivery waiting for the flag to expire or for the sweep:
    tens of seconds, a 50 s stall of signed events in benchmarks/time_to_kill.py.)"""
    from worker import wakeups
    from worker.tasks import idp_events as drain_task

    org = f.make_org(session)
    okta_user(session, org)
    receive(session, org, "first", "user.lifecycle.deactivate", minutes=0)
    session.commit()  # wakes the drain: the flag goes up
    org_id = org.id
    lower = wakeups.taken
    arrivals: list[str] = []

    def lowered_then_a_delivery_and_its_drain(task, kwargs):
        lower(task, kwargs)
        if not arrivals:
            arrivals.append("second")
            with drain_task.runtime().sessions() as late:
                receive(late, late.get(type(org), org_id), "second", "user.lifecycle.reactivate", 1)
                late.commit()  # raises the flag and wakes a drain
            drain_task.drain_deliveries(str(org_id))  # that drain, at once

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wakeups, "taken", lowered_then_a_delivery_and_its_drain)
        drain_task.drain_deliveries(str(org_id))
    session.expire_all()
    assert statuses(session, org) == {
        "first": ("processed", "1 applied"),
        "second": ("processed", "1 applied"),
    }
    session.rollback()
    woken = sent_tasks.count("events.drain")

    receive(session, org, "third", "user.lifecycle.deactivate", minutes=2)
    session.commit()

    assert sent_tasks.count("events.drain") == woken + 1
