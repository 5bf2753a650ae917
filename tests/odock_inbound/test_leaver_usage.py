"""Usage stored while its person is being revoked goes on their review (the urgent finding)
once it has committed, not at the next review sweep (an hour later)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import odock_reconcile, reviews
from models.entities import ReviewFinding, UsageRecord
from models.enums import Severity
from tests.odock_inbound.conftest import Bridged, key_body
from tests.odock_inbound.leaver_races import written_while_the_owner_is_revoked
from tests.odock_inbound.test_import import lines_of
from tests.odock_inbound.test_usage import record


def _stored(session: Session, usage_id: str) -> bool:
    return (
        session.scalar(select(UsageRecord.id).where(UsageRecord.external_id == usage_id))
        is not None
    )


def _urgent_finding(session: Session, key_id: uuid.UUID) -> ReviewFinding:
    session.expire_all()
    (finding,) = session.scalars(
        select(ReviewFinding).where(ReviewFinding.kind == reviews.KIND_USAGE)
    ).all()
    session.rollback()  # SQLite: a reading transaction holds the write lock
    assert finding.severity is Severity.URGENT and finding.subject_id == key_id
    return finding


def _usage_on_a_key(bridged: Bridged) -> tuple[uuid.UUID, dict[str, str]]:
    """A key of the owner, and a record of its use a minute from now: after the revocation
    that commits while the record is stored."""
    key_id = uuid.uuid4()
    assert bridged.put("keys", key_id, key_body(bridged.owner)).status_code == 200
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    return key_id, record(api_key_id=str(key_id), occurred_at=soon)


def test_usage_pushed_while_its_person_is_revoked_is_flagged_without_the_sweep(bridged, session):
    """Before, the finding waited for the review sweep (an hour)."""
    key_id, usage = _usage_on_a_key(bridged)

    written_while_the_owner_is_revoked(
        bridged,
        session,
        lambda writing: _stored(writing, usage["id"]),
        lambda: bridged.usage({"records": [usage]}),
    )

    _urgent_finding(session, key_id)


def test_a_usage_event_applied_while_its_person_is_revoked_is_flagged_without_the_sweep(
    bridged, session
):
    from worker.tasks.idp_events import drain_deliveries

    key_id, usage = _usage_on_a_key(bridged)
    event = {"type": "usage.recorded", "data": {"records": [usage]}}
    assert bridged.event(event).status_code == 202

    written_while_the_owner_is_revoked(
        bridged,
        session,
        lambda writing: _stored(writing, usage["id"]),
        lambda: drain_deliveries.run(str(bridged.org.id)),
    )

    _urgent_finding(session, key_id)


def test_usage_imported_while_its_person_is_revoked_is_flagged_without_the_sweep(
    bridged, session, engine
):
    key_id, usage = _usage_on_a_key(bridged)
    lines = lines_of({"kind": "usage", **usage})

    written_while_the_owner_is_revoked(
        bridged,
        session,
        lambda writing: _stored(writing, usage["id"]),
        lambda: odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines),
    )

    _urgent_finding(session, key_id)
