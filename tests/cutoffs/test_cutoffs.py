"""Cut-offs: one caller per key at a time, backoff between attempts, one alarm per incident."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from models.actions import cutoffs, lifecycle, reviews
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, CutoffIncident, KeyCutoff, OutboxMessage
from models.enums import Role
from tests.support import factories as f

LEASE = timedelta(seconds=10)
DEADLINE = timedelta(seconds=60)
REAPER = Actor.schedule("cutoffs.reap")


def revoked_keys(session, count: int = 2):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    keys = [f.make_key(session, org, owner=person) for _ in range(count)]
    lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()
    return org, admin, [k.id for k in keys]


def notifications(session, event: str) -> list[dict]:
    rows = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "notifications.dispatch")
    )
    return [kwargs for kwargs in rows if kwargs["event"] == event]


def test_a_revocation_starts_one_cutoff_per_key_with_the_change(session):
    org, _admin, key_ids = revoked_keys(session)
    rows = session.scalars(select(KeyCutoff)).all()
    assert sorted(r.key_id for r in rows) == sorted(key_ids)
    assert {(r.command, r.via_store, r.acknowledged_at) for r in rows} == {
        ("key.revoke", False, None)
    }
    assert {r.organisation_id for r in rows} == {org.id}


def test_only_one_caller_holds_a_key_until_its_lease_runs_out(session):
    _org, _admin, key_ids = revoked_keys(session)
    now = utcnow()

    first = cutoffs.claim_due(session, lease=LEASE, key_ids=key_ids, now=now)
    again = cutoffs.claim_due(session, lease=LEASE, key_ids=key_ids, now=now + timedelta(seconds=1))
    reaper = cutoffs.claim_due(session, lease=LEASE, now=now + timedelta(seconds=2))
    after_lease = cutoffs.claim_due(session, lease=LEASE, now=now + LEASE + timedelta(seconds=1))

    assert first == sorted(key_ids)
    assert again == [] and reaper == []
    assert after_lease == sorted(key_ids)  # the caller died mid-call: someone else goes on


def test_a_cutoff_opened_while_a_caller_holds_the_key_waits_for_that_caller(session):
    """A second change of a key while the first one's call is in flight (a reactivation while
    the revoke is with the store) opens a cut-off that is free and due: it let a second caller
    take the key beside the first, two callers sending the key's commands at once."""
    org, _admin, [key_id] = revoked_keys(session, count=1)
    first = utcnow()
    assert cutoffs.claim_due(session, lease=LEASE, now=first) == [key_id]
    cutoffs.open_cutoffs(
        session,
        organisation_id=org.id,
        key_ids=[key_id],
        command="key.restore",
        reason="reactivated",
        via_store=False,
    )
    session.flush()

    during = first + timedelta(seconds=1)
    assert cutoffs.claim_due(session, lease=LEASE, key_ids=[key_id], now=during) == []
    assert cutoffs.claim_due(session, lease=LEASE, now=during) == []  # nor the reaper
    after_lease = first + LEASE + timedelta(seconds=1)
    assert cutoffs.claim_due(session, lease=LEASE, now=after_lease) == [key_id]
    both = session.scalars(select(KeyCutoff).execution_options(populate_existing=True))
    assert {c.leased_until for c in both} == {after_lease + LEASE}


def test_a_failed_call_waits_longer_each_time_before_the_next(session):
    _org, _admin, key_ids = revoked_keys(session, count=1)
    now = utcnow()
    waits = []
    for attempt in range(4):
        assert cutoffs.claim_due(session, lease=LEASE, now=now) == key_ids, attempt
        cutoffs.record_failure(
            session,
            key_ids=key_ids,
            error="gateway answered 503",
            retry_base=1,
            retry_max=5,
            now=now,
        )
        session.flush()
        cutoff = session.scalars(select(KeyCutoff)).one()
        waits.append((cutoff.next_attempt_at - now).total_seconds())
        assert cutoffs.claim_due(session, lease=LEASE, now=now) == []  # not due yet
        now = cutoff.next_attempt_at
    assert waits == [1, 2, 4, 5]
    assert cutoff.attempts == 4 and cutoff.last_error == "gateway answered 503"


def test_an_acknowledgement_closes_only_cutoffs_requested_before_the_call(session):
    _org, _admin, key_ids = revoked_keys(session, count=1)
    before = utcnow() - timedelta(seconds=5)

    assert cutoffs.acknowledge(session, key_ids=key_ids, called_at=before, at=utcnow()) == []
    assert session.scalars(select(KeyCutoff)).one().acknowledged_at is None
    reviews.record_invalidation(session, key_ids=key_ids, reason="revoked")
    assert session.scalars(select(KeyCutoff)).one().acknowledged_at is not None


def test_the_gateways_acknowledgement_is_audited_for_each_key(session):
    """It ends the revocation at the gateway (the cut-off done, the findings resolved) and was
    the one step of a cut-off no audit event recorded: the store's acknowledgement, the proof
    and a missed deadline were, the gateway forgetting the key was not."""
    org, _admin, key_ids = revoked_keys(session)

    reviews.record_invalidation(session, key_ids=key_ids, reason="revoked")

    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.gateway_invalidated")
    ).all()
    assert sorted(str(e.target_id) for e in events) == sorted(str(k) for k in key_ids)
    assert {(e.organisation_id, e.actor, e.after["reason"]) for e in events} == {
        (org.id, "gateway", "revoked")
    }


def test_a_missed_deadline_alarms_once_per_incident_and_clears_on_success(session):
    org, admin, key_ids = revoked_keys(session)
    later = utcnow() + DEADLINE + timedelta(seconds=1)

    (incident,) = cutoffs.raise_alarms(session, deadline=DEADLINE, actor=REAPER, now=later)
    assert cutoffs.raise_alarms(session, deadline=DEADLINE, actor=REAPER, now=later) == []

    (alarm,) = notifications(session, cutoffs.EVENT_DEADLINE_MISSED)
    assert alarm["organisation_id"] == str(org.id)
    assert alarm["recipient_user_ids"] == [str(admin.id)]
    assert alarm["payload"]["severity"] == "urgent" and alarm["payload"]["keys_overdue"] == 2
    assert sorted(alarm["payload"]["key_ids"]) == sorted(str(k) for k in key_ids)
    assert incident.keys_overdue == 2 and incident.cleared_at is None

    reviews.record_invalidation(session, key_ids=key_ids[:1], reason="revoked")
    assert incident.cleared_at is None  # one key is still overdue
    reviews.record_invalidation(session, key_ids=key_ids[1:], reason="revoked")
    assert incident.cleared_at is not None
    (recovered,) = notifications(session, cutoffs.EVENT_RECOVERED)
    assert recovered["payload"]["incident_id"] == str(incident.id)
    audited = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "cutoff_incident")
    ).all()
    assert sorted(audited) == ["cutoff.deadline_missed", "cutoff.deadline_recovered"]


def test_a_key_overdue_while_an_incident_is_open_joins_it_without_a_second_alarm(session):
    org, _admin, _keys = revoked_keys(session, count=1)
    later = utcnow() + DEADLINE + timedelta(seconds=1)
    (incident,) = cutoffs.raise_alarms(session, deadline=DEADLINE, actor=REAPER, now=later)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()

    much_later = later + DEADLINE * 2
    assert cutoffs.raise_alarms(session, deadline=DEADLINE, actor=REAPER, now=much_later) == []

    assert incident.keys_overdue == 2
    assert len(notifications(session, cutoffs.EVENT_DEADLINE_MISSED)) == 1
    assert session.scalars(select(CutoffIncident)).one() is incident


def test_bridged_a_cutoff_is_done_only_once_the_store_then_the_gateway_answered(session, engine):
    """Bridged, the cut-off carries the store command first (same deadline and alarm): the
    gateway's call never counts for it before the store has disabled the key."""
    from models.actions import store_commands
    from models.db import make_session_factory
    from models.entities import StoreCommand

    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    session.commit()
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        lifecycle.revoke(bridged, user=bridged.merge(person), actor=f.SETUP)
        bridged.flush()
        (cutoff,) = bridged.scalars(select(KeyCutoff)).all()
        (command,) = bridged.scalars(select(StoreCommand)).all()
        assert cutoff.via_store and cutoff.key_id == key.id and cutoff.command_id == command.id
        assert cutoffs.claim_due(bridged, lease=LEASE) == []  # not the gateway's alone
        assert cutoffs.claim_due(bridged, lease=LEASE, via_store=True) == [key.id]
        # a gateway call before the store's answer does not complete it
        reviews.record_invalidation(bridged, key_ids=[key.id], reason="early")
        bridged.refresh(cutoff)
        assert cutoff.acknowledged_at is None
        later = utcnow() + DEADLINE + timedelta(seconds=1)
        assert len(cutoffs.raise_alarms(bridged, deadline=DEADLINE, actor=REAPER, now=later)) == 1

        store_commands.record_acknowledgements(
            bridged, acknowledged={command.id: utcnow()}, reinvalidate_after=5
        )
        assert cutoff.acknowledged_at is None  # the store has it; the gateway not yet
        assert store_commands.keys_for_the_gateway(bridged, key_ids=[key.id]) == [key.id]
        store_commands.record_gateway_invalidation(bridged, key_ids=[key.id], called_at=utcnow())
        bridged.flush()
        bridged.refresh(cutoff)
        assert cutoff.acknowledged_at is not None
        assert bridged.scalars(select(CutoffIncident)).one().cleared_at is not None
        bridged.rollback()


def test_a_reinvalidations_gateway_call_leaves_the_store_cutoff_to_its_caller_and_proof(
    session, engine
):
    """The store acknowledged late (a second invalidation planned) and its caller's gateway
    call failed; the re-invalidation's call, by the gateway-only caller, then succeeded first.
    It closed the store's cut-off too: the command was never marked invalidated nor its proof
    opened, so the gateway was never asked whether it still accepted the key."""
    from models.actions import store_commands
    from models.db import make_session_factory
    from models.entities import StoreCommand

    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    session.commit()
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        lifecycle.revoke(bridged, user=bridged.merge(person), actor=f.SETUP)
        bridged.flush()
        (command,) = bridged.scalars(select(StoreCommand)).all()
        for _attempt in range(2):  # the first attempt failed: the acknowledgement is late
            store_commands.record_attempt(bridged, command_id=command.id)
        store_commands.record_acknowledgements(
            bridged, acknowledged={command.id: utcnow()}, reinvalidate_after=0
        )
        bridged.flush()
        store_cutoff, again = bridged.scalars(
            select(KeyCutoff).order_by(KeyCutoff.via_store.desc())
        ).all()
        assert store_cutoff.via_store and again.command == "key.reinvalidate"

        assert cutoffs.claim_due(bridged, lease=LEASE) == [key.id]  # the re-invalidation
        reviews.record_invalidation(
            bridged, key_ids=[key.id], reason="late store acknowledgement", called_at=utcnow()
        )
        bridged.flush()
        bridged.refresh(store_cutoff)
        bridged.refresh(again)
        assert again.acknowledged_at is not None
        assert store_cutoff.acknowledged_at is None  # its own caller finishes it
        assert store_commands.keys_for_the_gateway(bridged, key_ids=[key.id]) == [key.id]

        store_commands.record_gateway_invalidation(bridged, key_ids=[key.id], called_at=utcnow())
        bridged.flush()
        bridged.refresh(store_cutoff)
        assert store_cutoff.acknowledged_at is not None
        assert cutoffs.proofs_pending(bridged, key_ids=[key.id]) == {command.id: key.id}
        bridged.rollback()


def test_two_reapers_at_once_open_one_incident_and_alarm_once(session, sessions):
    """The first reaper has opened the incident and not committed yet when a second finds
    other keys of the organisation overdue: they join that incident, no second alarm."""
    org, _admin, first_keys = revoked_keys(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()
    now = utcnow() + timedelta(days=1)  # a reap left running (real clock) finds none overdue
    for cutoff in session.scalars(select(KeyCutoff)):  # the first reaper sees only the first two
        early = cutoff.key_id in first_keys
        cutoff.requested_at = now - (DEADLINE * 2 if early else DEADLINE / 2)
    session.commit()
    second: dict[str, list] = {}

    def reap_again() -> None:
        with sessions() as other:
            second["opened"] = cutoffs.raise_alarms(
                other, deadline=DEADLINE, actor=REAPER, now=now + DEADLINE
            )
            other.commit()

    with sessions() as first:
        assert len(cutoffs.raise_alarms(first, deadline=DEADLINE, actor=REAPER, now=now)) == 1
        reaper = threading.Thread(target=reap_again)
        reaper.start()
        reaper.join(timeout=1)  # it waits on this open incident (PostgreSQL) or write lock
        first.commit()
    reaper.join(timeout=30)

    assert second["opened"] == []
    (incident,) = session.scalars(select(CutoffIncident)).all()
    assert incident.keys_overdue == 3 and incident.cleared_at is None
    assert len(notifications(session, cutoffs.EVENT_DEADLINE_MISSED)) == 1
