"""Usage stored while its person is being revoked goes on their review (the urgent finding)
once it has committed, not at the next review sweep (an hour later)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle, odock_reconcile, reviews
from models.entities import ReviewFinding, UsageRecord, User
from models.enums import Severity
from tests.odock_inbound.conftest import Bridged, key_body
from tests.odock_inbound.test_import import lines_of
from tests.odock_inbound.test_usage import record
from tests.support import factories as f
from tests.support.parallel import in_thread
from tests.support.sql_events import listening


def _stored(session: Session, usage_id: str) -> bool:
    return (
        session.scalar(select(UsageRecord.id).where(UsageRecord.external_id == usage_id))
        is not None
    )


def _stored_while_the_owner_is_revoked(
    bridged: Bridged, session: Session, usage_id: str, write: Callable[[], object]
) -> None:
    """`write` (in threads of its own) reads the owner ACTIVE and stores the usage; before
    it commits, the owner's revocation commits and its review opens, neither seeing the
    usage not yet committed; then `write` commits and returns. On SQLite the revocation
    cannot begin while the usage is stored (BEGIN IMMEDIATE): it comes after, and sees it."""
    held, go_on = threading.Event(), threading.Event()
    tester = threading.get_ident()

    def hold_open(writing: Session) -> None:
        if threading.get_ident() == tester or held.is_set() or not _stored(writing, usage_id):
            return
        held.set()
        if writing.get_bind().dialect.name == "postgresql":
            assert go_on.wait(30)

    with listening(Session, before_commit=hold_open):
        thread, out = in_thread(write)
        assert held.wait(30)
        lifecycle.revoke(session, user=session.get_one(User, bridged.owner.id), actor=f.SETUP)
        session.commit()
        revocation = lifecycle.latest_revocation(session, bridged.owner.id)
        assert revocation is not None
        reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
        session.commit()
        go_on.set()
        thread.join(30)
    assert "error" not in out, out


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

    _stored_while_the_owner_is_revoked(
        bridged, session, usage["id"], lambda: bridged.usage({"records": [usage]})
    )

    _urgent_finding(session, key_id)


def test_a_usage_event_applied_while_its_person_is_revoked_is_flagged_without_the_sweep(
    bridged, session
):
    from worker.tasks.idp_events import drain_deliveries

    key_id, usage = _usage_on_a_key(bridged)
    event = {"type": "usage.recorded", "data": {"records": [usage]}}
    assert bridged.event(event).status_code == 202

    _stored_while_the_owner_is_revoked(
        bridged, session, usage["id"], lambda: drain_deliveries.run(str(bridged.org.id))
    )

    _urgent_finding(session, key_id)


def test_usage_imported_while_its_person_is_revoked_is_flagged_without_the_sweep(
    bridged, session, engine
):
    key_id, usage = _usage_on_a_key(bridged)
    lines = lines_of({"kind": "usage", **usage})

    _stored_while_the_owner_is_revoked(
        bridged,
        session,
        usage["id"],
        lambda: odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines),
    )

    _urgent_finding(session, key_id)
