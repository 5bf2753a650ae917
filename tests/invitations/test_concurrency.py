"""Single use under concurrency, and two expiry runs at once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from models.actions import invitations as inv
from models.actor import Actor
from models.base import utcnow
from models.entities import Invitation, User
from models.enums import InvitationStatus
from models.errors import DomainError


def _run_together(count: int, work) -> list[str]:
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        result = work()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_twenty_simultaneous_accepts_make_exactly_one_user(session, sessions, scene):
    issued = scene.invite(session, "race@example.com")
    session.commit()

    def accept() -> str:
        with sessions() as own:
            try:
                inv.accept_invitation(own, token=issued.token, email="race@example.com", name="R")
                own.commit()
            except DomainError as exc:
                own.rollback()
                return exc.code
            return "accepted"

    outcomes = Counter(_run_together(20, accept))
    assert outcomes == {"accepted": 1, "invitation_used": 19}
    session.expire_all()
    users = session.scalar(select(func.count(User.id)).where(User.email_key == "race@example.com"))
    assert users == 1
    assert session.get(Invitation, issued.invitation.id).status is InvitationStatus.ACCEPTED


def test_two_expiry_runs_at_once_expire_each_row_once(session, sessions, scene):
    now = utcnow()
    for i in range(40):
        scene.invite(session, f"e{i}@example.com").invitation.expires_at = now - timedelta(hours=1)
    session.commit()

    def expire() -> str:
        total = 0
        while True:
            with sessions() as own:
                ids = inv.expire_overdue(own, now=now, limit=7, actor=Actor.schedule("t"))
                own.commit()
            total += len(ids)
            if len(ids) < 7:
                return str(total)

    totals = _run_together(2, expire)
    assert sum(int(t) for t in totals) == 40
    expired = session.scalar(
        select(func.count(Invitation.id)).where(Invitation.status == InvitationStatus.EXPIRED)
    )
    assert expired == 40
