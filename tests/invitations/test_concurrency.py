"""Single use under concurrency, and two expiry runs at once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from models.actions import invitations as inv
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, Invitation, User
from models.enums import InvitationStatus
from models.errors import DomainError
from tests.support.parallel import in_parallel


def test_twenty_simultaneous_accepts_make_exactly_one_user(session, sessions, scene):
    issued = scene.invite(session, "race@example.com")
    session.commit()

    def accept() -> str:
        for _ in range(20):  # the shared server may briefly refuse connections; try again
            try:
                return _accept_once()
            except OperationalError as exc:
                if "too many clients" not in str(exc):
                    raise
        raise AssertionError("the database kept refusing connections")

    def _accept_once() -> str:
        with sessions() as own:
            try:
                inv.accept_invitation(own, token=issued.token, email="race@example.com", name="R")
                own.commit()
            except DomainError as exc:
                own.rollback()
                return exc.code
            return "accepted"

    outcomes = Counter(in_parallel([accept] * 20))
    assert outcomes == {"accepted": 1, "invitation_used": 19}
    session.expire_all()
    users = session.scalar(select(func.count(User.id)).where(User.email_key == "race@example.com"))
    assert users == 1
    assert session.get(Invitation, issued.invitation.id).status is InvitationStatus.ACCEPTED


def test_two_expiry_sweeps_at_once_expire_and_audit_each_row_once(
    session, sessions, scene, monkeypatch
):
    from worker.runtime import runtime
    from worker.tasks.invitations import expire_overdue

    current = runtime()
    monkeypatch.setattr(
        current, "settings", current.settings.model_copy(update={"invitation_expiry_batch_size": 7})
    )
    now = utcnow()
    for i in range(40):
        scene.invite(session, f"e{i}@example.com").invitation.expires_at = now - timedelta(hours=1)
    session.commit()

    totals = in_parallel([lambda: str(expire_overdue.run())] * 2)
    assert sum(int(t) for t in totals) == 40
    expired = session.scalar(
        select(func.count(Invitation.id)).where(Invitation.status == InvitationStatus.EXPIRED)
    )
    assert expired == 40
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "invitation.expired"))
    audited = [i for event in events for i in event.after["ids"]]
    assert len(audited) == len(set(audited)) == 40


def test_accept_racing_the_expiry_sweep_never_both(session, sessions, scene):
    issued = scene.invite(session, "edge@example.com")
    # The sweep runs as if at the deadline while the accept runs just before it.
    issued.invitation.expires_at = utcnow() + timedelta(seconds=30)
    session.commit()
    deadline = issued.invitation.expires_at

    def accept() -> str:
        with sessions() as own:
            try:
                inv.accept_invitation(own, token=issued.token, email="edge@example.com", name="E")
                own.commit()
                return "accepted"
            except DomainError as exc:
                own.rollback()
                return exc.code

    def sweep() -> str:
        with sessions() as own:
            count = inv.expire_overdue(own, now=deadline, limit=10, actor=Actor.schedule("t"))
            own.commit()
            return "expired" if count else "nothing"

    outcomes = set(in_parallel([accept, sweep]))
    session.expire_all()
    final = session.get(Invitation, issued.invitation.id).status
    assert final in (InvitationStatus.ACCEPTED, InvitationStatus.EXPIRED)
    assert ("accepted" in outcomes) == (final is InvitationStatus.ACCEPTED)
