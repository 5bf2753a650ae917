"""A notification hook deleted by an admin while the worker sends one of its deliveries.

The delete takes the hook's deliveries with it (ON DELETE CASCADE). The send in flight was
claimed before the delete committed; when its answer comes the worker writes nothing (no
attempt, no failure count, no row brought back), ends the task cleanly (no error, no retry)
and a second run of the task, after the delete, sends nothing. Before, the worker wrote its
attempt to the deleted rows and the task failed (StaleDataError, or a foreign key violation
on PostgreSQL); on SQLite it held the write lock while it sent, so the admin's delete waited
on the receiver."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from models.actions import notification_deliveries, notification_hooks
from models.entities import AuditEvent, DeliveryAttempt, NotificationDelivery, NotificationHook
from models.enums import HookKind
from tests.reviews.test_deliveries import add_hook
from tests.support import factories as f
from tests.support.fuzz import hold_tasks
from tests.support.held_receiver import held_receiver
from tests.support.parallel import in_thread


def _planned(session, settings, org, url: str) -> tuple[NotificationHook, NotificationDelivery]:
    hook, _secret = add_hook(session, settings, org, HookKind.WEBHOOK, url)
    (delivery,) = notification_deliveries.plan_deliveries(
        session,
        event_id=f"evt-{hook.id}",
        organisation_id=org.id,
        event="review.opened",
        payload={"x": 1},
        recipient_user_ids=[],
    )
    session.commit()
    return hook, delivery


def _delete_hook(sessions, hook_id) -> None:
    with sessions() as admin:
        hook = admin.get_one(NotificationHook, hook_id)
        notification_hooks.delete_hook(admin, hook=hook, actor=f.SETUP)
        admin.commit()


def _left(sessions, hook_id, delivery_id) -> tuple[Any, ...]:
    with sessions() as fresh:
        return (
            fresh.get(NotificationHook, hook_id),
            fresh.get(NotificationDelivery, delivery_id),
            fresh.scalar(
                select(func.count())
                .select_from(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
            ),
            fresh.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "hook.deleted", AuditEvent.target_id == str(hook_id))
            ),
        )


def test_a_hook_deleted_while_its_delivery_is_out_ends_the_task_cleanly(
    session, sessions, settings, monkeypatch
):
    from worker.tasks.notifications import deliver

    hold_tasks(monkeypatch)  # only this test sends it
    org = f.make_org(session)
    with held_receiver() as receiver:
        hook, delivery = _planned(session, settings, org, receiver.url)
        sending, out = in_thread(lambda: deliver.run(str(delivery.id)))
        try:
            assert receiver.arrived.wait(30), "the delivery never reached the receiver"
            _delete_hook(sessions, hook.id)  # while the receiver holds the request
        finally:
            receiver.answer.set()
            sending.join(60)

        assert out == {"result": "gone"}, out
        assert _left(sessions, hook.id, delivery.id) == (None, None, 0, 1)
        # The task run again after the delete (a redelivered message) sends nothing.
        assert deliver.run(str(delivery.id)) == "done or gone"
        assert receiver.received() == 1


def test_a_hook_deleted_between_the_claim_and_the_answer_ends_the_task_cleanly(
    session, sessions, settings, monkeypatch
):
    """The delete commits right after the worker's claim did: the send was under way (its
    claim committed first) and its outcome is dropped, not written."""
    from worker.tasks.notifications import deliver

    hold_tasks(monkeypatch)
    org = f.make_org(session)
    claim = notification_deliveries.claim_delivery

    def claimed_then_deleted(worker_session: Session, **kwargs: Any) -> Any:
        claimed = claim(worker_session, **kwargs)
        event.listen(
            worker_session, "after_commit", lambda _s: _delete_hook(sessions, hook.id), once=True
        )
        return claimed

    monkeypatch.setattr(notification_deliveries, "claim_delivery", claimed_then_deleted)
    with held_receiver() as receiver:
        receiver.answer.set()
        hook, delivery = _planned(session, settings, org, receiver.url)
        result = deliver.run(str(delivery.id))

    assert result == "gone", result
    assert _left(sessions, hook.id, delivery.id) == (None, None, 0, 1)
