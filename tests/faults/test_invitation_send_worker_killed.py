"""A worker SIGKILLed (with its pool) while it sends an invitation's email: the send was
claimed (its lease, invitations.SEND_LEASE) and the SMTP server had not yet answered. Once the
dead worker's lease has run out, the outbox relay sends the task again and the next worker
takes the abandoned claim over: the invitee gets the email once, and the invitation's history
shows the abandoned attempt failed and the next one sent.

The lease (five minutes) and the relay's wait for a message never completed
(OUTBOX_REDISPATCH_AFTER, fifteen) are waited out by a worker and a beat whose clocks run
ahead (tests/support/shifted_clock.py), not by the test.

In a module of its own: its workers are the only ones consuming its queue."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.actions import invitations as inv
from models.entities import InvitationDelivery
from models.settings import Settings
from tests.invitations.conftest import scene  # noqa: F401 (the fixture)
from tests.support.smtp_front import HOLD, PASS, smtp_front
from tests.support.wait import wait_until
from tests.support.worker import start_shifted, start_worker, stop_all

pytestmark = pytest.mark.slow

INVITEE = "killed.mid.send@example.com"


@pytest.fixture
def front(smtp_server) -> Iterator:
    with smtp_front(smtp_server[0].port, HOLD) as front:
        yield front


@pytest.fixture
def own(settings: Settings, front) -> Iterator[Settings]:
    """This test's queue, its SMTP server behind the front, and a beat relaying often."""
    from worker.celery_app import configure_celery

    own = settings.model_copy(
        update={
            "celery_queue": f"{settings.celery_queue}-mailkill",
            "smtp_port": front.port,
            "outbox_relay_interval": 0.5,
        }
    )
    configure_celery(own)
    yield own
    configure_celery(settings)


def test_a_worker_killed_mid_send_leaves_the_email_to_the_next_once_its_lease_ends(
    own,
    front,
    session,
    sessions,
    scene,  # noqa: F811 (the fixture imported above)
    mailbox,
    tmp_path,
):
    doomed = start_worker(own, log_dir=tmp_path, concurrency=1)
    try:
        issued = scene.invite(session, INVITEE)
        session.commit()
        assert front.held.wait(60), "the worker never reached the SMTP server"
        os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its pool, mid-send
        doomed.process.wait(timeout=10)
    finally:
        doomed.kill()
    assert _history(sessions, issued.invitation.id) == ["sending"]
    assert mailbox.to(INVITEE) == []

    front.mode = PASS  # the SMTP server answers again
    ahead = (inv.SEND_LEASE.total_seconds() + own.outbox_redispatch_after) + 60
    later = start_shifted(own, log_dir=tmp_path, offset=ahead, roles=("worker", "beat"))
    try:
        wait_until(lambda: mailbox.to(INVITEE), timeout=60, what="the email, sent again")
        wait_until(
            lambda: _history(sessions, issued.invitation.id) == ["failed", "sent"],
            timeout=30,
            what="the abandoned attempt failed and the next one sent",
        )
    finally:
        stop_all(later)
    assert len(mailbox.to(INVITEE)) == 1


def _history(sessions, invitation_id) -> list[str]:
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(InvitationDelivery.status)
                .where(InvitationDelivery.invitation_id == invitation_id)
                .order_by(InvitationDelivery.occurred_at)
            )
        )
