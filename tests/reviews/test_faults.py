"""Faults: the broker down at revocation time, the gateway down, a worker killed mid-review.

Nothing is lost and nothing is done twice once things are back.
"""

import os
import signal

from sqlalchemy import func, select, text, update

from models.actions import lifecycle
from models.entities import (
    AuditEvent,
    OutboxMessage,
    ReviewFinding,
    Revocation,
    RevocationReview,
    User,
)
from tests.reviews.conftest import build_leaver
from tests.support import factories as f
from tests.support.reaper import wait_reaping
from tests.support.wait import wait_until
from tests.support.worker import start_worker


def broker_down(*_args, **_kwargs):
    raise ConnectionRefusedError("broker down")


def one_review(sessions):
    def check():
        with sessions() as fresh:
            reviews = fresh.scalars(select(RevocationReview)).all()
            return reviews and reviews

    return wait_until(check, what="the review")


def all_completed(sessions):
    def check():
        with sessions() as fresh:
            return (
                fresh.scalar(
                    select(func.count(OutboxMessage.id)).where(
                        OutboxMessage.task.in_(
                            ["reviews.open_for_revocation", "gateway.invalidate_keys"]
                        ),
                        OutboxMessage.completed_at.is_(None),
                    )
                )
                == 0
            )

    wait_until(check, what="every outbox message completed")


def counts(sessions):
    with sessions() as fresh:
        return {
            "reviews": fresh.scalar(select(func.count(RevocationReview.id))),
            "findings": fresh.scalar(select(func.count(ReviewFinding.id))),
            "keys_revoked": fresh.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.action == "api_key.revoked")
            ),
            "opened": fresh.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.action == "review.opened")
            ),
            "opened_notifications": sum(
                1
                for kwargs in fresh.scalars(
                    select(OutboxMessage.kwargs).where(
                        OutboxMessage.task == "notifications.dispatch"
                    )
                )
                if kwargs["event"] == "review.opened"
            ),
        }


def test_broker_down_at_revocation_keeps_the_work_and_the_relay_delivers_it(
    session, sessions, client, worker, gateway, monkeypatch
):
    from worker import outbox_relay
    from worker.celery_app import celery_app

    world = build_leaver(session)
    token = f.admin_token(session, world.org, world.admin)
    session.commit()
    keys = {str(world.key_a.id), str(world.key_b.id)}
    monkeypatch.setattr(celery_app, "send_task", broker_down)

    response = client.post(
        f"/api/v1/users/{world.person.id}/revoke", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    with sessions() as fresh:
        pending = fresh.scalars(
            select(OutboxMessage.task).where(OutboxMessage.dispatched_at.is_(None))
        ).all()
        assert sorted(pending) == ["gateway.invalidate_keys", "reviews.open_for_revocation"]
        assert fresh.scalar(select(func.count(RevocationReview.id))) == 0
    monkeypatch.undo()
    outbox_relay.relay_outbox()  # (a stray relay elsewhere may publish some first; fine)

    one_review(sessions)
    wait_until(lambda: gateway.keys_for(keys), what="the invalidation")
    all_completed(sessions)
    assert gateway.keys_for(keys) == [keys]
    assert counts(sessions) | {"findings": 0} == {
        "reviews": 1,
        "findings": 0,
        "keys_revoked": 2,
        "opened": 1,
        "opened_notifications": 1,
    }


def test_gateway_down_is_retried_until_it_acknowledges(session, sessions, client, worker, gateway):
    world = build_leaver(session)
    token = f.admin_token(session, world.org, world.admin)
    session.commit()
    keys = {str(world.key_a.id), str(world.key_b.id)}
    gateway.down_for, gateway.down_for_keys = 2, keys

    client.post(
        f"/api/v1/users/{world.person.id}/revoke", headers={"Authorization": f"Bearer {token}"}
    )

    # Each failed call leaves the cut-off due a little later; the reaper (beat, here the test)
    # calls again: one call at a time, and none once the gateway has acknowledged.
    wait_reaping(lambda: gateway.keys_for(keys), what="the gateway to acknowledge")
    assert gateway.keys_for(keys, ok_only=False) == [keys, keys, keys]
    assert gateway.keys_for(keys) == [keys]

    def recorded():
        with sessions() as fresh:
            rows = fresh.scalars(
                select(ReviewFinding).where(ReviewFinding.kind == "user_key")
            ).all()
            return len(rows) == 2 and all(r.invalidation_status == "acknowledged" for r in rows)

    wait_until(recorded, what="the acknowledgement on the findings")
    all_completed(sessions)


def _waiting_on_a_lock(session):
    # pg_stat_activity is snapshotted per transaction; clear it to see the present
    session.connection().execute(text("SELECT pg_stat_clear_snapshot()"))
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return session.connection().execute(query).scalar()


def test_a_worker_killed_mid_review_loses_nothing_and_repeats_nothing(
    session, sessions, settings, engine, worker, gateway, monkeypatch, tmp_path
):
    from worker import outbox_relay
    from worker.celery_app import celery_app
    from worker.runtime import runtime

    world = build_leaver(session)
    session.commit()
    person_id = world.person.id
    monkeypatch.setattr(celery_app, "send_task", broker_down)
    with sessions() as tx:
        revocation = lifecycle.revoke(tx, user=tx.get_one(User, person_id), actor=f.SETUP)
        tx.commit()
    monkeypatch.undo()
    with sessions() as tx:
        message = tx.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "reviews.open_for_revocation")
        ).one()
        message_id, kwargs = message.id, message.kwargs
        tx.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(dispatched_at=func.now())
        )
        tx.commit()

    doomed_queue = f"{settings.celery_queue}-doomed"
    # the solo pool runs the task in the worker process itself: SIGKILL hits it mid-task
    doomed = start_worker(
        settings.model_copy(update={"celery_queue": doomed_queue}),
        log_dir=tmp_path,
        concurrency=1,
        extra_env={"CELERY_WORKER_POOL": "solo"},
    )
    blocker = sessions()
    try:
        # hold the revocation so the doomed worker is stuck inside the review when it dies
        if engine.dialect.name == "postgresql":
            blocker.execute(
                select(Revocation).where(Revocation.id == revocation.id).with_for_update()
            )
        else:
            blocker.execute(
                update(Revocation).where(Revocation.id == revocation.id).values(reason="held")
            )
        celery_app.send_task(
            "reviews.open_for_revocation",
            kwargs=kwargs,
            task_id=f"outbox-{message_id}",
            queue=doomed_queue,
        )
        wait_until(
            lambda: f"[outbox-{message_id}] received" in doomed.log(),
            what="the doomed worker took it",
        )
        if engine.dialect.name == "postgresql":
            try:
                wait_until(lambda: _waiting_on_a_lock(blocker), what="the worker blocked")
            except AssertionError as exc:
                rows = (
                    blocker.connection()
                    .execute(
                        text(
                            "SELECT pid, state, wait_event_type, wait_event, left(query, 120)"
                            " FROM pg_stat_activity WHERE datname = current_database()"
                        )
                    )
                    .all()
                )
                raise AssertionError(f"{exc}\n{rows}\n{doomed.log()[-300:]}") from None
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=10)
    finally:
        blocker.rollback()
        blocker.close()
        doomed.stop()

    with sessions() as fresh:
        assert fresh.scalar(select(func.count(RevocationReview.id))) == 0
        assert fresh.get(OutboxMessage, message_id).completed_at is None
    # the relay re-publishes what was handed out but never completed; another worker finishes
    monkeypatch.setattr(
        runtime(), "settings", settings.model_copy(update={"outbox_redispatch_after": 0.001})
    )
    outbox_relay.relay_outbox()  # (a stray relay elsewhere may publish some first; fine)
    one_review(sessions)
    all_completed(sessions)
    assert counts(sessions) == {
        "reviews": 1,
        "findings": counts(sessions)["findings"],
        "keys_revoked": 2,
        "opened": 1,
        "opened_notifications": 1,
    }
    with sessions() as fresh:
        kinds = fresh.execute(select(ReviewFinding.kind, ReviewFinding.subject_id)).all()
        assert len(kinds) == len(set(kinds)) == 6
