"""API token housekeeping: each passed expiry written to the audit trail, once."""

from __future__ import annotations

from models.actions.tokens import note_expired
from models.actor import Actor
from models.base import utcnow
from worker.runtime import runtime
from worker.tasks.base import task


@task("tokens.note_expired")
def note_expired_tokens() -> int:
    """Audit `token.expired` for every token whose expiry passed (refusal needs no sweep)."""
    actor, total = Actor.schedule("tokens.note_expired"), 0
    while True:
        with runtime().sessions() as session:
            noted = note_expired(session, now=utcnow(), actor=actor)
            session.commit()
        total += noted
        if noted == 0:
            return total
