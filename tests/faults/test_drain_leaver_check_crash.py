"""A Celery worker killed (SIGKILL, with its pool) between an event drain's commit and its
leaver check: Odock's `key.upserted` event for a person read ACTIVE is applied while her
revocation commits, and the worker dies right after the batch commits. The check's backstop
(models.actions.leaver_checks), armed in the batch's transaction, is sent by the outbox relay
and run by the next worker: the leaver's key is revoked within seconds, once, with its review
finding and audit event, not left active until the hourly sweep; the event itself was applied
once and nobody else lost anything. The web process's crash is test_leaver_check_crash.py's.

In a module of its own: its worker is the only one consuming the run's queues (the shared
`worker` of a module that asks for it would take the drain instead).

The race it needs exists only where writers run side by side: PostgreSQL (on SQLite the
revocation waits for the batch, and its review sees the key)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from models.actions.leaver_checks import TASK_CHECK
from models.entities import (
    AuditEvent,
    Organisation,
    OutboxMessage,
    ReviewFinding,
    User,
    VirtualApiKey,
)
from models.enums import UserStatus
from tests.odock_inbound.conftest import bridge, key_body
from tests.odock_inbound.leaver_races import revoke_with_review
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from tests.support.worker import purge_queues, start_worker

pytestmark = pytest.mark.slow


def test_a_key_event_drained_as_its_owner_is_revoked_is_revoked_though_the_worker_died(
    session, sessions, settings, client, tmp_path
):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("writers are serial on SQLite: the revocation's review sees the key")
    bridged = bridge(session, settings, client)
    other = session.get_one(User, bridged.other.id)
    other_key = f.make_key(session, session.get_one(Organisation, bridged.org.id), owner=other).id
    session.commit()
    key_id = uuid.uuid4()
    purge_queues(settings)
    setup = (
        "import tests.support.held_commit as h; "
        f"h.install({str(key_id)!r}, {str(tmp_path)!r}, whole_group=True)"
    )
    doomed = start_worker(settings, log_dir=tmp_path, setup=setup)
    try:
        event = {"type": "key.upserted", "id": str(key_id), "version": 1}
        answered = bridged.event({**event, "data": key_body(bridged.owner)})
        assert answered.status_code == 202, answered.text
        wait_until(lambda: (tmp_path / "held").exists(), what="the drain's batch to be held")
        revoke_with_review(session, bridged.owner.id)
        (tmp_path / "go").touch()
        doomed.process.wait(timeout=30)  # killed, with its pool, right after the commit
    finally:
        doomed.kill()
    assert _key(sessions, key_id).revoked is False  # the batch committed; its check never ran
    assert _backstops(sessions) == 1
    died = time.monotonic()

    after = start_worker(settings, log_dir=tmp_path)
    try:
        wait_relaying(lambda: _key(sessions, key_id).revoked, what="the key revoked", timeout=60)
        wait_until(lambda: _backstops(sessions) == 0, what="the backstop done", timeout=30)
    finally:
        after.stop()

    assert time.monotonic() - died < 60  # not REVIEW_SWEEP_INTERVAL (an hour): no sweep ran
    with sessions() as fresh:
        (finding,) = fresh.scalars(select(ReviewFinding).where(ReviewFinding.subject_id == key_id))
        assert (finding.action, finding.action_taken) == ("revoked", True)
        audited = _audited(fresh, key_id)
        # Created once, revoked once; the gateway's cut-off may have been audited by now too.
        assert audited.pop("api_key.gateway_invalidated", 1) == 1
        assert audited == {"odock.key.created": 1, "api_key.revoked": 1}
        assert fresh.get_one(User, bridged.other.id).status is UserStatus.ACTIVE
        assert fresh.get_one(VirtualApiKey, other_key).revoked is False


def _key(sessions, key_id: uuid.UUID) -> VirtualApiKey:
    with sessions() as fresh:
        return fresh.get_one(VirtualApiKey, key_id)


def _backstops(sessions) -> int:
    """The leaver checks armed and not yet done."""
    with sessions() as fresh:
        return fresh.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.task == TASK_CHECK, OutboxMessage.completed_at.is_(None))
        )


def _audited(session, key_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(AuditEvent.action, func.count())
        .where(AuditEvent.target_id == str(key_id))
        .group_by(AuditEvent.action)
    ).all()
    return dict(rows)
