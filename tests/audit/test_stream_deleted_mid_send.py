"""An audit stream deleted by an admin while the worker sends it a batch: when the receiver
answers, the worker writes nothing (no cursor moved, no failure counted, no row brought back)
and the task ends cleanly; run again, it sends nothing. Before, it read the deleted stream
with get_one and the task failed (NoResultFound)."""

from __future__ import annotations

from sqlalchemy import func, select

from models.actions import audit_streams
from models.actor import Actor
from models.audit_sequence import sequence_events
from models.entities import AuditEvent, AuditStream
from tests.audit.test_streams import _events
from tests.support import factories as f
from tests.support.fuzz import hold_tasks
from tests.support.held_receiver import held_receiver
from tests.support.parallel import in_thread
from worker.tasks.audit_streams import deliver_stream


def _deletions(sessions, stream_id) -> int:
    with sessions() as fresh:
        return int(
            fresh.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.action == "audit_stream.deleted",
                    AuditEvent.target_id == str(stream_id),
                )
            )
            or 0
        )


def test_a_stream_deleted_while_a_batch_is_out_ends_the_task_cleanly(
    session, sessions, settings, monkeypatch
) -> None:
    hold_tasks(monkeypatch)  # only this test sends it
    org = f.make_org(session)
    _events(session, org, 5)
    with held_receiver() as receiver:
        stream, _secret = f.make_stream(
            session,
            org.id,
            receiver.url,
            secret_key=settings.secret_key,
            actor=Actor.system("test"),
        )
        session.commit()
        while sequence_events(session):
            session.commit()
        session.commit()
        sending, out = in_thread(lambda: deliver_stream(str(stream.id)))
        try:
            assert receiver.arrived.wait(30), "the batch never reached the receiver"
            with sessions() as admin:
                row = admin.get_one(AuditStream, stream.id)
                audit_streams.delete_stream(admin, stream=row, actor=f.SETUP)
                admin.commit()
        finally:
            receiver.answer.set()
            sending.join(60)

        assert out == {"result": 0}, out
        with sessions() as fresh:
            assert fresh.get(AuditStream, stream.id) is None
        assert _deletions(sessions, stream.id) == 1
        assert deliver_stream(str(stream.id)) == 0  # run again after the delete: nothing sent
        assert receiver.received() == 1
