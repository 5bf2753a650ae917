"""Completed outbox messages are purged after OUTBOX_RETENTION_DAYS, a batch per transaction;
a message never completed (due, in flight, or given up on) is kept for an operator to see."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import outbox
from models.base import utcnow
from models.entities import AuditEvent, OutboxMessage
from models.retention import Purge, in_batches
from models.settings import SettingsError, load_settings
from tests.support.sql_events import statements_sent
from worker.tasks import retention as tasks

NOW = utcnow()
RETENTION = timedelta(days=7)


def _message(label: str, *, completed: timedelta | None, attempts: int = 1) -> OutboxMessage:
    """A message created and sent 30 days ago, completed `completed` ago (None: never)."""
    sent = NOW - timedelta(days=30)
    return OutboxMessage(
        task="tests.noop",
        kwargs={"label": label},
        created_at=sent,
        available_at=sent,
        dispatched_at=sent,
        attempts=attempts,
        completed_at=None if completed is None else NOW - completed,
    )


def _labels(session) -> list[str]:
    session.rollback()
    return sorted(m.kwargs["label"] for m in session.scalars(select(OutboxMessage)))


def _purge_audits(session) -> list[dict]:
    return [
        event.after
        for event in session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.purged"))
    ]


def _completed_before() -> datetime:
    return NOW - RETENTION


def test_old_completed_messages_go_and_recent_or_unfinished_ones_stay(session, sessions):
    session.add_all(
        [
            _message("old-1", completed=timedelta(days=8)),
            _message("old-2", completed=timedelta(days=20)),
            _message("recent", completed=timedelta(days=6)),
            _message("in-flight", completed=None),
            _message("dead-letter", completed=None, attempts=8),
            OutboxMessage(task="tests.noop", kwargs={"label": "due"}, available_at=NOW),
        ]
    )
    session.commit()

    done = tasks.purge_outbox_before(sessions, completed_before=_completed_before())

    assert done == Purge(purged=2, batches=1)
    assert _labels(session) == ["dead-letter", "due", "in-flight", "recent"]
    [audit] = _purge_audits(session)
    assert audit == {"purged": 2, "before": _completed_before().isoformat()}


def test_a_purge_of_many_messages_deletes_them_a_batch_per_transaction(session, sessions, engine):
    session.add_all([_message(f"old-{n:02}", completed=timedelta(days=8)) for n in range(10)])
    session.add(_message("recent", completed=timedelta(hours=1)))
    session.commit()

    with statements_sent(engine) as statements:
        done = tasks.purge_outbox_before(sessions, completed_before=_completed_before(), batch=3)

    assert done == Purge(purged=10, batches=4)  # 3 + 3 + 3 + 1
    assert len([s for s in statements if s.startswith("DELETE FROM outbox")]) == 4
    assert _labels(session) == ["recent"]
    assert sorted(audit["purged"] for audit in _purge_audits(session)) == [1, 3, 3, 3]


def test_a_purge_that_dies_midway_has_audited_every_batch_it_deleted(session, sessions):
    """Failed before (the run's one event was written with its last batch: the rows of the
    batches committed before the crash went unaudited)."""
    session.add_all([_message(f"old-{n:02}", completed=timedelta(days=8)) for n in range(5)])
    session.commit()
    batches = 0

    def dies_on_the_second_batch(purging: Session, limit: int) -> int:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise RuntimeError("the worker died")
        return outbox.purge_completed(purging, completed_before=_completed_before(), limit=limit)

    with pytest.raises(RuntimeError):
        in_batches(
            sessions,
            batch=2,
            delete=dies_on_the_second_batch,
            record=lambda s, gone: outbox.record_purge(
                s, gone, completed_before=_completed_before()
            ),
        )

    assert len(_labels(session)) == 3
    assert [audit["purged"] for audit in _purge_audits(session)] == [2]


def test_a_purge_that_finds_nothing_changes_nothing_and_audits_nothing(session, sessions):
    session.add(_message("recent", completed=timedelta(days=1)))
    session.commit()

    assert tasks.purge_outbox_before(sessions, completed_before=_completed_before()) == (
        Purge(purged=0, batches=1)
    )
    assert _labels(session) == ["recent"]
    assert _purge_audits(session) == []


def test_the_task_keeps_completed_messages_for_the_retention_setting(session, settings):
    assert settings.outbox_retention_days == 7
    session.add_all(
        [
            _message("eight-days", completed=timedelta(days=8)),
            _message("six-days", completed=timedelta(days=6)),
        ]
    )
    session.commit()

    assert tasks.purge_outbox() == 1
    assert _labels(session) == ["six-days"]


def test_beat_purges_completed_outbox_messages_hourly(settings):
    from worker.celery_app import beat_schedule

    entry = beat_schedule(settings)["outbox-purge-completed"]
    assert entry == {"task": "outbox.purge_completed", "schedule": timedelta(hours=1)}


@pytest.mark.parametrize("days", ["0", "-1", "3651", "soon"])
def test_a_retention_out_of_range_is_refused_at_start(monkeypatch, days):
    monkeypatch.setenv("OUTBOX_RETENTION_DAYS", days)
    with pytest.raises(SettingsError, match="OUTBOX_RETENTION_DAYS"):
        load_settings()
