"""A write from Odock held open while its owner's revocation commits: the race of a key or a
usage record arriving as its person is revoked."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from models.actions import lifecycle, reviews
from models.entities import User
from tests.odock_inbound.conftest import Bridged
from tests.support import factories as f
from tests.support.parallel import in_thread
from tests.support.sql_events import listening


def written_while_the_owner_is_revoked(
    bridged: Bridged,
    session: Session,
    wrote: Callable[[Session], bool],
    write: Callable[[], object],
) -> None:
    """`write` (in threads other than the test's) reads the owner ACTIVE and writes what
    `wrote` recognises in its session; before it commits, the owner's revocation commits and
    its review opens, neither seeing the write; then `write` commits and returns. On SQLite
    the revocation cannot begin while the write is open (BEGIN IMMEDIATE): it comes after,
    and sees it."""
    held, go_on = threading.Event(), threading.Event()
    tester = threading.get_ident()

    def hold_open(writing: Session) -> None:
        if threading.get_ident() == tester or held.is_set() or not wrote(writing):
            return
        held.set()
        if writing.get_bind().dialect.name == "postgresql":
            assert go_on.wait(30)

    with listening(Session, before_commit=hold_open):
        thread, out = in_thread(write)
        assert held.wait(30)
        revoke_with_review(session, bridged.owner.id)
        go_on.set()
        thread.join(30)
    assert "error" not in out, out


def revoke_with_review(session: Session, user_id: uuid.UUID) -> None:
    """Revoke the person and open their review, each committed, as a revocation does."""
    lifecycle.revoke(session, user=session.get_one(User, user_id), actor=f.SETUP)
    session.commit()
    revocation = lifecycle.latest_revocation(session, user_id)
    assert revocation is not None
    reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
