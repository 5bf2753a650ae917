"""The clock jumps across an invitation's expiry between the expiry beat's runs (or during
one): the invitation is expired by the clock at once, whatever its stored status says until
the beat marks it; the beat marks each once, as of one moment per run."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from models.actions import invitations as inv
from models.entities import Invitation, InvitationDelivery
from models.enums import InvitationStatus
from models.outbox import take_new_messages
from worker.tasks import invitations as invitation_tasks
from worker.tasks.invitations import deliver, expire_overdue


def _status(sessions, invitation_id) -> InvitationStatus:
    with sessions() as fresh:
        return fresh.get_one(Invitation, invitation_id).status


def test_an_invitation_accepted_after_its_expiry_is_refused_before_the_beat_marks_it(
    session, sessions, scene
):
    issued = scene.invite(session, "late.accept@example.com", expires_in_hours=1)
    take_new_messages(session)  # its email is not the point here
    invitation_id, expires_at = issued.invitation.id, issued.invitation.expires_at
    session.commit()

    with time_machine.travel(expires_at + timedelta(seconds=1), tick=False):
        assert _status(sessions, invitation_id) is InvitationStatus.PENDING  # no beat yet
        with pytest.raises(inv.InvitationExpired):
            inv.accept_invitation(
                session, token=issued.token, email="late.accept@example.com", name="Late"
            )
        session.rollback()
        assert expire_overdue() == 1  # the beat comes: marks it, once
        assert expire_overdue() == 0
    assert _status(sessions, invitation_id) is InvitationStatus.EXPIRED


def test_the_email_of_an_invitation_past_its_expiry_is_not_sent(session, sessions, scene, mailbox):
    """A send whose task runs once the invitation's expiry has passed (a retry chain that
    outlived it, a worker back after downtime, a clock that jumped) sends nothing: its link
    is dead already. Before, the send went by the stored status, pending until the beat ran,
    and mailed a link the enrollment page then refused as expired."""
    issued = scene.invite(session, "late.mail@example.com", expires_in_hours=1)
    take_new_messages(session)  # only the run below sends it
    invitation_id, expires_at = issued.invitation.id, issued.invitation.expires_at
    session.commit()

    with time_machine.travel(expires_at + timedelta(seconds=1), tick=False):
        deliver.run(str(invitation_id), 1)

    assert mailbox.to("late.mail@example.com") == []
    with sessions() as fresh:
        assert (
            fresh.scalars(
                select(InvitationDelivery).where(InvitationDelivery.invitation_id == invitation_id)
            ).all()
            == []
        )


def test_an_expiry_that_comes_during_a_beat_run_waits_for_the_next_run(
    session, sessions, scene, monkeypatch
):
    """The expiry run decides as of the moment it started: an invitation whose expiry comes
    while it runs is the next run's, and in between the clock already refuses it."""
    first = scene.invite(session, "first@example.com", expires_in_hours=1)
    second = scene.invite(session, "second@example.com", expires_in_hours=2)
    take_new_messages(session)
    first_id, second_id = first.invitation.id, second.invitation.id
    start = second.invitation.expires_at - timedelta(seconds=1)
    session.commit()

    with time_machine.travel(start, tick=False) as clock:
        # The clock jumps past the second expiry as soon as the run has taken its moment.
        taken = invitation_tasks.utcnow

        def now_then_jump():  # type: ignore[no-untyped-def]
            moment = taken()
            clock.shift(timedelta(seconds=5))
            return moment

        monkeypatch.setattr(invitation_tasks, "utcnow", now_then_jump)
        assert expire_overdue() == 1
        monkeypatch.undo()
        assert _status(sessions, first_id) is InvitationStatus.EXPIRED
        assert _status(sessions, second_id) is InvitationStatus.PENDING
        with pytest.raises(inv.InvitationExpired):
            inv.accept_invitation(session, token=second.token, email="second@example.com", name="S")
        session.rollback()
        assert expire_overdue() == 1
    assert _status(sessions, second_id) is InvitationStatus.EXPIRED
