"""A change of state and its side effects commit together; the relay publishes what the broker
did not take. No worker runs beside these tests (one would publish what they relay): the worker's
end of it is in test_outbox_to_worker.py."""

from sqlalchemy import select

from models.actions import lifecycle
from models.entities import OutboxMessage
from tests.support import factories as f


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
