"""A change of state and its side effects commit together; the relay publishes what the broker
did not take. No worker runs beside these tests (one would publish what they relay): the worker's
end of it is in test_outbox_to_worker.py."""

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.actions import lifecycle
from models.entities import KeyCutoff, OutboxMessage
from tests.support import factories as f
from tests.support.sql_events import listening

GATEWAY_PATH = "/gateway/v1/internal/cache/invalidate"


def test_work_is_kept_when_the_broker_is_down_at_commit_and_relayed_later(
    session, sessions, monkeypatch
):
    from worker import outbox_relay
    from worker.celery_app import celery_app

    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    session.commit()

    def broker_down(*_args, **_kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()
    pending = session.scalars(
        select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
    ).all()
    assert {m.task for m in pending} == {"gateway.invalidate_keys", "reviews.open_for_revocation"}
    assert all("broker down" in (m.last_error or "") for m in pending)
    session.rollback()  # end the read: on SQLite every transaction holds the write lock

    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    assert outbox_relay.relay_outbox() == 2
    assert sorted(sent) == ["gateway.invalidate_keys", "reviews.open_for_revocation"]
    assert outbox_relay.relay_outbox() == 0


def test_installing_the_relay_twice_publishes_each_message_once(session, sessions, monkeypatch):
    from worker import outbox_relay
    from worker.celery_app import celery_app

    outbox_relay.install_after_commit_relay(sessions)  # already installed by the fixture
    assert sessions in outbox_relay._RELAYED_FACTORIES
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    org = f.make_org(session)
    person = f.make_user(session, org)
    session.commit()
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()
    assert sent == ["reviews.open_for_revocation"]


def test_a_revocations_publish_after_commit_runs_no_statement(
    session, sessions, engine, monkeypatch
):
    """The gateway invalidation is written already dispatched (eager) and published right
    after commit with no transaction of its own. It was not eager: the web's one publishing
    thread spent a transaction on it (lock the row, mark it dispatched, commit), and under
    load that thread was where a revocation waited (queued -> published 2.2 s p50 for SCIM
    and admin at load 12-34 in benchmarks/time_to_kill.py)."""
    from worker.celery_app import celery_app

    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    session.commit()
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.flush()
        with listening(engine, before_cursor_execute=seen):
            tx.commit()

    assert sorted(sent) == ["gateway.invalidate_keys", "reviews.open_for_revocation"]
    assert statements == []
    invalidation = session.scalars(
        select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
    ).one()
    assert invalidation.dispatched_at is not None and invalidation.attempts == 1


def test_an_invalidation_lost_between_commit_and_publish_is_re_driven_by_the_reaper(
    session, sessions, httpserver, monkeypatch
):
    """An eager message lost after commit (the process died before it published) is not
    re-sent by the outbox before OUTBOX_REDISPATCH_AFTER; the key's cut-off, opened in the
    same transaction and due at once, is what the reaper (every CUTOFF_REAP_INTERVAL) drives."""
    from worker import outbox_relay
    from worker.celery_app import celery_app
    from worker.tasks import cutoffs

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)  # lost on the way
    httpserver.expect_request(GATEWAY_PATH).respond_with_json({})
    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    session.commit()
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()

    assert outbox_relay.relay_outbox() == 0  # the outbox takes it as sent
    cutoffs.reap()

    invalidated = [request.get_json()["key_ids"] for request, _ in httpserver.log]
    assert invalidated == [[str(key.id)]]
    with sessions() as fresh:
        cutoff = fresh.scalars(select(KeyCutoff).where(KeyCutoff.key_id == key.id)).one()
        assert cutoff.acknowledged_at is not None


def test_the_publishing_thread_keeps_its_producer_until_a_publish_fails(sessions, monkeypatch):
    """The web's publishing thread publishes with one producer of Celery's pool, not one taken
    and bound for each message; after a failed publish it gives it back and takes another."""
    import queue

    from worker import outbox_relay
    from worker.celery_app import celery_app

    given: list[object] = []

    def send_task(name, *, producer=None, **_kw):
        given.append(producer)
        if name == "broker.down":
            raise ConnectionRefusedError("broker down")

    def in_the_publishing_thread(job):
        done: queue.Queue = queue.Queue()
        assert outbox_relay._PUBLISHER.submit(lambda: done.put(job()))
        return done.get(timeout=30)

    def publish(task: str, message_id: int) -> None:
        message = OutboxMessage(id=message_id, task=task, kwargs={}, request_id=None)
        in_the_publishing_thread(lambda: outbox_relay.publish_eager(sessions, [message]))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    publish("reviews.open_for_revocation", -1)
    publish("reviews.open_for_revocation", -2)
    assert given[0] is not None and given[1] is given[0]
    assert in_the_publishing_thread(lambda: outbox_relay._PRODUCERS.kept) is given[0]

    publish("broker.down", -3)  # handed back (no such row here) and the producer let go
    assert in_the_publishing_thread(lambda: outbox_relay._PRODUCERS.kept) is None


def test_a_relay_whose_backend_is_terminated_as_it_claims_publishes_nothing_and_the_next_all_once(
    session, sessions, engine, monkeypatch
):
    """The relay's claim loses its connection as it commits (its backend terminated; the
    server runs on): the relay fails, nothing was claimed nor published, and the next relay
    publishes each message once."""
    from worker import outbox_relay
    from worker.celery_app import celery_app

    if engine.dialect.name != "postgresql":
        pytest.skip("terminating a backend is PostgreSQL's")
    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    session.commit()
    monkeypatch.setattr(celery_app, "send_task", _broker_down)
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))

    def terminated_as_it_commits(claiming: Session) -> None:
        pid = claiming.connection().scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})

    with (
        listening(Session, before_commit=terminated_as_it_commits),
        pytest.raises(OperationalError),
    ):
        outbox_relay.relay_outbox()
    assert sent == []

    assert outbox_relay.relay_outbox() == 2
    assert sorted(sent) == ["gateway.invalidate_keys", "reviews.open_for_revocation"]
    assert outbox_relay.relay_outbox() == 0


def _broker_down(*_args, **_kwargs):
    raise ConnectionRefusedError("broker down")
