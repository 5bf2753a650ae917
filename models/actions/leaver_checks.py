"""The check after a write from Odock, made durable against a crash between the two.

A key or usage record written for a person read ACTIVE can race their revocation: the check
that catches it (review_sweep.review_keys_of_leavers, review_usage_of_leavers) runs in a
transaction begun after the write committed. A process killed in between (SIGKILL, OOM, a
deploy) skipped it, and the leaver's key stayed active until the hourly review sweep.

So the write's own transaction arms a backstop: an outbox message describing the check, due
BACKSTOP_AFTER later. The writer's check right after the commit disarms it (deletes it in the
check's own transaction), so normally the relay never sends it; after a crash the relay sends
it once due, and a worker runs the same check (idempotent: what is reviewed is not due again).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from models import outbox
from models.actions import review_sweep
from models.actions.odock_objects import KIND_KEY
from models.actor import Actor
from models.base import utcnow
from models.entities import OutboxMessage

TASK_CHECK = "reviews.check_leavers"
# Longer than a writer's check takes (one statement when nothing is due); a backstop sent
# while that check still runs only repeats it.
BACKSTOP_AFTER = timedelta(seconds=10)


def arm(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    key_ids: Sequence[uuid.UUID] | None = (),
    usage_ids: Sequence[str] = (),
) -> OutboxMessage:
    """In the write's transaction: the check of these keys (None: every key of the
    organisation, after a load) and usage records, sent to a worker BACKSTOP_AFTER from now
    unless `check_now` disarms it first."""
    return outbox.enqueue(
        session,
        TASK_CHECK,
        available_at=utcnow() + BACKSTOP_AFTER,
        organisation_id=str(organisation_id),
        actor=actor.to_json(),
        key_ids=None if key_ids is None else [str(key_id) for key_id in key_ids],
        usage_ids=list(usage_ids),
    )


def grants_access(kind: str) -> bool:
    """Whether an Odock object of this kind, written for a leaver, leaves them access to
    take away: a key does; a budget or quota holds none."""
    return kind == KIND_KEY


def arm_for_object(
    session: Session, *, organisation_id: uuid.UUID, actor: Actor, kind: str, object_id: uuid.UUID
) -> OutboxMessage | None:
    """`arm` for one pushed object, when it is of a kind that grants access."""
    if not grants_access(kind):
        return None
    return arm(session, organisation_id=organisation_id, actor=actor, key_ids=[object_id])


def check_now(session: Session, backstop: OutboxMessage) -> list[str]:
    """Once the write has committed: run the check `arm` described, and disarm it in the
    same transaction. The reviews changed."""
    changed = check(session, **backstop.kwargs)
    outbox.cancel(session, backstop)
    return changed


def check(
    session: Session,
    *,
    organisation_id: str,
    actor: dict[str, Any],
    key_ids: list[str] | None,
    usage_ids: list[str],
) -> list[str]:
    """The keys and usage records written, of people revoked here, put to their reviews now.
    The reviews changed."""
    organisation = uuid.UUID(organisation_id)
    by = Actor.from_json(actor)
    changed = []
    if key_ids is None or key_ids:
        changed += review_sweep.review_keys_of_leavers(
            session,
            organisation_id=organisation,
            actor=by,
            key_ids=None if key_ids is None else [uuid.UUID(key_id) for key_id in key_ids],
        )
    if usage_ids:
        changed += review_sweep.review_usage_of_leavers(
            session, organisation_id=organisation, actor=by, usage_ids=usage_ids
        )
    return changed
