"""Acknowledged key cut-offs are purged after CUTOFF_RETENTION_DAYS, a batch per transaction;
a cut-off not acknowledged (pending, leased, alarmed, a proof waiting) is never purged: the
reaper, the deadline alarm and the incident read it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.entities import AuditEvent, KeyCutoff
from models.entities.cutoff import PROOF_COMMAND
from models.retention import Purge
from models.settings import SettingsError, load_settings
from tests.support import factories as f
from tests.support.sql_events import statements_sent
from worker.tasks import retention as tasks

NOW = utcnow()
BEFORE = NOW - timedelta(days=7)


def _cutoff(org, label: str, *, acknowledged: timedelta | None, **fields) -> KeyCutoff:
    """A cut-off requested 30 days ago, acknowledged `acknowledged` ago (None: never)."""
    asked = NOW - timedelta(days=30)
    return KeyCutoff(
        organisation_id=org.id,
        key_id=uuid.uuid4(),
        reason=label,
        requested_at=asked,
        next_attempt_at=asked,
        acknowledged_at=None if acknowledged is None else NOW - acknowledged,
        **{"command": "key.revoke", **fields},
    )


def _labels(session) -> list[str]:
    session.rollback()
    return sorted(cutoff.reason for cutoff in session.scalars(select(KeyCutoff)))


def _purge_audits(session) -> list[dict]:
    query = select(AuditEvent).where(AuditEvent.action == "cutoff.purged")
    return [(e.organisation_id, e.target_id, e.after) for e in session.scalars(query)]


def test_old_acknowledged_cutoffs_go_and_recent_or_pending_ones_stay(session, sessions):
    org = f.make_org(session)
    session.add_all(
        [
            _cutoff(org, "old-1", acknowledged=timedelta(days=8)),
            _cutoff(org, "old-proof", acknowledged=timedelta(days=9), command=PROOF_COMMAND),
            _cutoff(org, "recent", acknowledged=timedelta(days=6)),
            _cutoff(org, "pending", acknowledged=None),
            _cutoff(org, "alarmed", acknowledged=None, alarmed_at=NOW - timedelta(days=29)),
            _cutoff(org, "leased", acknowledged=None, leased_until=NOW + timedelta(seconds=5)),
        ]
    )
    session.commit()

    done = tasks.purge_cutoffs_before(sessions, acknowledged_before=BEFORE)

    assert done == Purge(purged=2, batches=1)
    assert _labels(session) == ["alarmed", "leased", "pending", "recent"]
    assert _purge_audits(session) == [
        (None, "key_cutoffs", {"purged": 2, "before": BEFORE.isoformat()})
    ]


def test_a_purge_of_many_cutoffs_deletes_them_a_batch_per_transaction(session, sessions, engine):
    org = f.make_org(session)
    session.add_all([_cutoff(org, f"old-{n}", acknowledged=timedelta(days=8)) for n in range(7)])
    session.add(_cutoff(org, "pending", acknowledged=None))
    session.commit()

    with statements_sent(engine) as statements:
        done = tasks.purge_cutoffs_before(sessions, acknowledged_before=BEFORE, batch=2)

    assert done == Purge(purged=7, batches=4)  # 2 + 2 + 2 + 1
    assert len([s for s in statements if s.startswith("DELETE FROM key_cutoffs")]) == 4
    assert _labels(session) == ["pending"]
    assert sorted(after["purged"] for _org, _table, after in _purge_audits(session)) == [
        1,
        2,
        2,
        2,
    ]


def test_the_task_keeps_acknowledged_cutoffs_for_the_retention_setting(session, settings):
    assert settings.cutoff_retention_days == 7
    org = f.make_org(session)
    session.add_all(
        [
            _cutoff(org, "eight-days", acknowledged=timedelta(days=8)),
            _cutoff(org, "six-days", acknowledged=timedelta(days=6)),
        ]
    )
    session.commit()

    assert tasks.purge_cutoffs() == 1
    assert _labels(session) == ["six-days"]


def test_beat_purges_acknowledged_cutoffs_hourly(settings):
    from worker.celery_app import beat_schedule

    entry = beat_schedule(settings)["cutoffs-purge-acknowledged"]
    assert entry == {"task": "cutoffs.purge_acknowledged", "schedule": timedelta(hours=1)}


@pytest.mark.parametrize("days", ["0", "-1", "3651", "soon"])
def test_a_retention_out_of_range_is_refused_at_start(monkeypatch, days):
    monkeypatch.setenv("CUTOFF_RETENTION_DAYS", days)
    with pytest.raises(SettingsError, match="CUTOFF_RETENTION_DAYS"):
        load_settings()
