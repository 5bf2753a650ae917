"""Audit streams against real receivers on loopback, sent by a real worker: batched, in order,
signed, retried through a receiver that fails for a while, nothing lost and nothing doubled."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from connectors.signed_webhooks import verify
from models.actions import audit_streams
from models.actor import Actor
from models.audit import record
from models.audit_sequence import sequence_events
from models.entities import AuditEvent, AuditStream
from models.enums import Source, StreamPreset
from tests.support import factories as f
from tests.support.factories import LOOPBACK
from tests.support.siem import Receiver, siem_receiver
from tests.support.wait import wait_until
from worker.celery_app import celery_app
from worker.tasks.audit_streams import deliver_stream


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with siem_receiver() as running:
        yield running


def _events(session, org, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        record(
            session,
            actor=Actor(Source.SCIM, "okta"),
            organisation_id=org.id,
            action="user.updated",
            target_type="user",
            target_id=f"user-{n}",
            after={"n": n},
        )


def _stream(session, settings, org, receiver, preset=StreamPreset.GENERIC, batch_size=7):
    stream, secret = f.make_stream(
        session,
        org.id,
        receiver.url,
        secret_key=settings.secret_key,
        preset=preset,
        splunk_token="hec-token-1" if preset is StreamPreset.SPLUNK else None,
        batch_size=batch_size,
        actor=Actor.system("test"),
    )
    return stream, secret


def _org_event_ids(sessions, org_id) -> list[str]:
    with sessions() as session:
        return [
            str(i)
            for i in session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.organisation_id == org_id)
                .order_by(AuditEvent.seq)
            )
        ]


def _streamed(receiver: Receiver) -> list[dict]:
    lines = []
    for request in receiver.accepted():
        lines += [json.loads(line) for line in request.body.decode().splitlines()]
    return lines


def _tick_until(condition, what: str):
    def check():
        celery_app.send_task("audit.stream_tick")
        return condition()

    return wait_until(check, timeout=60, interval=0.3, what=what)


def test_a_failing_receiver_gets_every_event_once_in_order(
    session, sessions, settings, receiver, worker
) -> None:
    org = f.make_org(session)
    _events(session, org, 40)
    _stream_row, secret = _stream(session, settings, org, receiver)
    session.commit()
    receiver.refuse_next = 4
    _tick_until(lambda: len(_streamed(receiver)) >= 42, "the first 42 events streamed")
    with sessions() as other:
        _events(other, other.get_one(type(org), org.id), 25, start=40)
        other.commit()
    # org and stream creation, 40 + 25 changes, and the stream failing and recovering
    expected_count = 42 + 25 + 2

    def caught_up():
        streamed = _streamed(receiver)
        return len(streamed) >= expected_count and streamed

    streamed = _tick_until(caught_up, "every event streamed")
    expected = _org_event_ids(sessions, org.id)
    assert len(expected) == expected_count
    assert [line["id"] for line in streamed] == expected  # none lost, none doubled, in order
    assert [line["seq"] for line in streamed] == sorted(line["seq"] for line in streamed)
    assert len(receiver.refused()) == 4
    # The refused batch is resent as it was: same webhook-id, same events.
    first_refused, first_accepted = receiver.refused()[0], receiver.accepted()[0]
    assert first_refused.headers["webhook-id"] == first_accepted.headers["webhook-id"]
    assert first_refused.body == first_accepted.body
    for request in receiver.accepted():
        assert request.headers["Content-Type"] == "application/x-ndjson"
        verify([secret], body=request.body, headers=request.headers)
        assert len(request.body.decode().splitlines()) <= 7

    def recorded():
        # The receiver has the last batch before the worker commits what it counted.
        with sessions() as check:
            row = check.get_one(AuditStream, _stream_row.id)
            return row.events_sent == expected_count and row

    row = wait_until(recorded, what="the stream's counters after its last batch")
    assert row.consecutive_failures == 0
    assert row.pending_through_seq is None


def test_splunk_preset_sends_its_token_and_event_envelopes(
    session, sessions, settings, receiver, worker
) -> None:
    org = f.make_org(session)
    _events(session, org, 3)
    _stream(session, settings, org, receiver, preset=StreamPreset.SPLUNK, batch_size=100)
    session.commit()
    _tick_until(lambda: len(_streamed(receiver)) >= 5, "the Splunk batch")
    (request,) = receiver.accepted()
    assert request.headers["Authorization"] == "Splunk hec-token-1"
    envelopes = _streamed(receiver)
    assert [e["event"]["id"] for e in envelopes] == _org_event_ids(sessions, org.id)
    for envelope in envelopes:
        assert envelope["sourcetype"] == "odock:audit"
        assert isinstance(envelope["time"], float)
        assert envelope["event"]["organisation_id"] == str(org.id)


def test_a_paused_stream_sends_nothing_and_resumes_from_its_cursor(
    session, sessions, settings, receiver, worker
) -> None:
    org = f.make_org(session)
    stream, _ = _stream(session, settings, org, receiver, batch_size=50)
    session.commit()
    _tick_until(lambda: len(_streamed(receiver)) >= 2, "the creation events")
    with sessions() as other:
        paused = other.get_one(AuditStream, stream.id)
        audit_streams.update_stream(
            other, stream=paused, actor=Actor.system("test"), url_policy=LOOPBACK, enabled=False
        )
        _events(other, other.get_one(type(org), org.id), 5)
        other.commit()
    sent_before, events_before = len(receiver.accepted()), len(_streamed(receiver))
    assert deliver_stream(str(stream.id)) == 0  # run here, now: a paused stream is not claimed
    assert len(receiver.accepted()) == sent_before
    with sessions() as other:
        resumed = other.get_one(AuditStream, stream.id)
        audit_streams.update_stream(
            other, stream=resumed, actor=Actor.system("test"), url_policy=LOOPBACK, enabled=True
        )
        other.commit()
    total = events_before + 2 + 5  # the creation events, the pause and resume, the five changes
    streamed = _tick_until(
        lambda: len(_streamed(receiver)) >= total and _streamed(receiver), "resumed"
    )
    assert [line["id"] for line in streamed] == _org_event_ids(sessions, org.id)


def test_a_refusal_after_days_of_failures_is_still_recorded(session, sessions, settings, receiver):
    """Past about a thousand failures the backoff's 2**n no longer converted to a float: the
    refusal was rolled back, and the stream retried at every tick with no backoff."""
    org = f.make_org(session)
    _events(session, org, 3)
    stream, _secret = _stream(session, settings, org, receiver)
    stream.consecutive_failures = 5000
    session.commit()
    sequence_events(session)
    session.commit()
    receiver.refuse_next = 1

    assert deliver_stream(str(stream.id)) == 0

    with sessions() as fresh:
        row = fresh.get_one(AuditStream, stream.id)
        assert row.consecutive_failures == 5001
        assert row.last_error and row.pending_through_seq is not None  # the batch stays pinned
        assert row.next_attempt_at is not None and row.last_success_at is None
        waited = row.next_attempt_at - row.first_failure_at  # both the refusal's `now`
        assert waited.total_seconds() == settings.audit_stream_retry_max
    assert len(receiver.refused()) == 1 and receiver.accepted() == []


@pytest.mark.parametrize(
    ("status", "asked", "waits"),
    [(429, "120", 120.0), (503, "120", 120.0), (429, "86400", 600.0)],
    ids=["429", "503", "a-day-capped"],
)
def test_a_receiver_asking_to_wait_is_sent_again_no_sooner_and_at_most_the_cap(
    session, sessions, settings, receiver, monkeypatch, status, asked, waits
):
    """A SIEM shedding load (429 or 503 with Retry-After) gets the batch again no sooner than it
    asked, and at most AUDIT_STREAM_RETRY_MAX later; the stream's last error names the wait.
    Before, the Retry-After was ignored: the next try came after the backoff's base (1 s
    here), into the same refusal."""
    from worker.runtime import runtime

    waiting = {"audit_stream_retry_base": 1.0, "audit_stream_retry_max": 600.0}
    monkeypatch.setattr(runtime(), "settings", settings.model_copy(update=waiting))
    org = f.make_org(session)
    _events(session, org, 3)
    stream, _secret = _stream(session, settings, org, receiver)
    session.commit()
    sequence_events(session)
    session.commit()
    receiver.refuse_next, receiver.refuse_with = 1, (status, asked)

    assert deliver_stream(str(stream.id)) == 0

    with sessions() as fresh:
        row = fresh.get_one(AuditStream, stream.id)
        assert row.pending_through_seq is not None  # the batch stays pinned
        assert row.last_error == f"HTTP {status} (Retry-After {asked} s)"
        assert row.next_attempt_at is not None and row.first_failure_at is not None
        waited = row.next_attempt_at - row.first_failure_at  # both the refusal's `now`
        assert waited.total_seconds() == waits
    assert [r.status for r in receiver.refused()] == [status] and receiver.accepted() == []


def test_a_stream_that_starts_failing_and_recovers_leaves_one_audit_event_each(
    session, sessions, settings, receiver
):
    """The receiver refusing is a change of the stream's state an admin must be able to see in
    the log: once when it starts failing and once when it recovers, not at every retry."""
    org = f.make_org(session)
    _events(session, org, 3)
    stream, _secret = _stream(session, settings, org, receiver)
    session.commit()
    sequence_events(session)
    session.commit()
    receiver.refuse_next = 2

    for _attempt in range(3):  # refused, refused, accepted
        deliver_stream(str(stream.id))
        with sessions() as due:
            due.get_one(AuditStream, stream.id).next_attempt_at = None  # due again now
            due.commit()

    with sessions() as fresh:
        health = [
            (event.action, event.before, event.after)
            for event in fresh.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_id == str(stream.id))
                .where(AuditEvent.action.in_(["audit_stream.failing", "audit_stream.recovered"]))
                .order_by(AuditEvent.occurred_at)
            )
        ]
    assert [action for action, _before, _after in health] == [
        "audit_stream.failing",
        "audit_stream.recovered",
    ]
    (_, failing_before, failing_after), (_, recovered_before, recovered_after) = health
    assert failing_before == {"failing": False}
    assert failing_after is not None and failing_after["failing"] is True
    assert failing_after["error"]
    assert recovered_before is not None and recovered_before["consecutive_failures"] == 2
    assert recovered_after == {"failing": False}
    assert len(receiver.refused()) == 2 and len(receiver.accepted()) == 1
