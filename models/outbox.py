"""Recording side effects in the caller's transaction; a relay hands them to Celery.

Two kinds, both sent only once the transaction commits:
- a message (`enqueue`): a durable row, re-sent by the periodic relay until its task succeeds
  (`eager` ones are published right after commit without a second transaction);
- a wake-up (`wake_after_commit`): no row of its own, for a task that drains work already
  stored durably in its own rows (received deliveries). Identical wake-ups are coalesced, and
  a periodic sweep wakes the task again for rows left waiting, so none is lost for good.

A message completed more than OUTBOX_RETENTION_DAYS ago is purged (`purge_completed`); one never
completed (due, in flight, or given up on after its attempts) is kept for an operator to see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, inspect, or_, select
from sqlalchemy.orm import Session

from models import request_ids, retention
from models.actor import Actor
from models.base import utcnow
from models.entities import OutboxMessage

NEW_MESSAGES_KEY = "odock.outbox.new"
EAGER_MESSAGES_KEY = "odock.outbox.eager"
WAKEUPS_KEY = "odock.outbox.wakeups"
BATCHES_KEY = "odock.outbox.batches"

WakeUp = tuple[str, tuple[tuple[str, str], ...]]

PURGE_ACTOR = Actor.schedule("outbox purge")


def enqueue(
    session: Session,
    task: str,
    *,
    available_at: datetime | None = None,
    eager: bool = False,
    **kwargs: Any,
) -> OutboxMessage:
    """Schedule `task(**kwargs)` to run once this transaction commits (and never if it fails).

    A message `available_at` later is left to the periodic relay, which sends it once due.
    `eager` is for hot paths: the row is written already marked as dispatched and is published
    right after commit without a second transaction; a failed publish hands it back to the
    relay at once, and one lost in between is re-sent by the relay's stale-dispatch sweep.
    """
    now = utcnow()
    message = OutboxMessage(
        task=task,
        kwargs=kwargs,
        available_at=available_at or now,
        request_id=request_ids.current(),
    )
    if eager:
        message.dispatched_at, message.attempts = now, 1
    session.add(message)
    if message.available_at <= now:
        session.info.setdefault(EAGER_MESSAGES_KEY if eager else NEW_MESSAGES_KEY, []).append(
            message
        )
    return message


def cancel(session: Session, message: OutboxMessage) -> None:
    """A message whose work was done another way, deleted in this transaction. Sent meanwhile
    (it was due), its task finds nothing left to do."""
    session.execute(delete(OutboxMessage).where(OutboxMessage.id == message.id))


# Each extension rewrites the message's JSON at the next flush, so a transaction that revokes
# thousands (an LDAP plan) would write its message over and over, growing: at this many items
# the next ones start a message of their own.
BATCHED_ITEMS_MAX = 200


def enqueue_batched(
    session: Session,
    task: str,
    *,
    batch: tuple[Any, ...],
    lists: dict[str, list[Any]],
    eager: bool = False,
    **kwargs: Any,
) -> OutboxMessage:
    """enqueue, or extend the message this transaction already enqueued for the same `task`
    and `batch`: its `lists` get these items appended (its other kwargs stay the first
    caller's). A drain batch applying 20 revocations then sends one task, not 20.

    Savepoints stay right: a message enqueued in a savepoint rolled back is expunged (and a new
    one is started), and an extension made in one is expired with it (the message reloads
    what was committed to the savepoint before)."""
    batches: dict[tuple[Any, ...], tuple[object, OutboxMessage]] = session.info.setdefault(
        BATCHES_KEY, {}
    )
    # Begun now if no statement has run yet: the message must belong to the transaction
    # that will carry it, not to None, or the next call would start a second message.
    transaction = session.get_transaction() or session.begin()
    found = batches.get((task, *batch))
    if (
        found is not None
        and found[0] is transaction
        and _in_transaction(found[1])
        and _items(found[1], lists) < BATCHED_ITEMS_MAX
    ):
        message = found[1]
        merged = dict(message.kwargs)
        for name, items in lists.items():
            merged[name] = [*merged[name], *items]
        message.kwargs = merged  # a new dict: the JSON column sees the change
        return message
    fields: dict[str, Any] = {**kwargs, **lists}
    message = enqueue(session, task, eager=eager, **fields)
    batches[(task, *batch)] = (transaction, message)
    return message


def _items(message: OutboxMessage, lists: dict[str, list[Any]]) -> int:
    return len(message.kwargs[next(iter(lists))])


def _in_transaction(message: OutboxMessage) -> bool:
    state = inspect(message)
    return state.pending or state.persistent


def claim_due(
    session: Session, *, now: datetime, stale_before: datetime, max_attempts: int, limit: int
) -> list[OutboxMessage]:
    """The messages due (never sent, or sent before `stale_before` and never completed),
    marked dispatched now and counted as attempted: the caller commits, then publishes
    outside the transaction. One it never publishes (its process died) is due again once
    its dispatch is stale; one it fails to publish it hands back."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.completed_at.is_(None),
            OutboxMessage.attempts < max_attempts,
            OutboxMessage.available_at <= now,
            or_(
                OutboxMessage.dispatched_at.is_(None),
                OutboxMessage.dispatched_at < stale_before,
            ),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return _claimed(session, query, now)


def claim_unsent(session: Session, ids: list[int], *, now: datetime) -> list[OutboxMessage]:
    """These messages, those not dispatched yet, claimed as `claim_due` claims them."""
    query = select(OutboxMessage).where(
        OutboxMessage.id.in_(ids), OutboxMessage.dispatched_at.is_(None)
    )
    return _claimed(session, query, now)


def _claimed(session: Session, query: Select[Any], now: datetime) -> list[OutboxMessage]:
    # Two relays never claim the same row at once; SQLite serialises writers anyway.
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages: list[OutboxMessage] = list(session.scalars(query))
    for message in messages:
        message.dispatched_at, message.attempts = now, message.attempts + 1
    return messages


def take_new_messages(session: Session) -> list[OutboxMessage]:
    """The messages this session enqueued since the last call (used after commit)."""
    session.info.pop(BATCHES_KEY, None)
    return _still_stored(session.info.pop(NEW_MESSAGES_KEY, []))


def take_eager_messages(session: Session) -> list[OutboxMessage]:
    return _still_stored(session.info.pop(EAGER_MESSAGES_KEY, []))


def _still_stored(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    # A message enqueued inside a savepoint that was rolled back was never committed.
    return [message for message in messages if inspect(message).persistent]


def wake_after_commit(session: Session, task: str, **kwargs: str) -> None:
    """Wake `task(**kwargs)` after this transaction commits; repeats in it count once."""
    wakeups: set[WakeUp] = session.info.setdefault(WAKEUPS_KEY, set())
    wakeups.add((task, tuple(sorted(kwargs.items()))))


def take_wakeups(session: Session) -> list[tuple[str, dict[str, str]]]:
    return [(task, dict(kwargs)) for task, kwargs in sorted(session.info.pop(WAKEUPS_KEY, set()))]


def purge_completed(session: Session, *, completed_before: datetime, limit: int) -> int:
    """Delete at most `limit` messages completed before `completed_before`; how many went."""
    return retention.delete_batch(
        session, OutboxMessage.id, OutboxMessage.completed_at < completed_before, limit=limit
    )


def record_purge(session: Session, purged: int, *, completed_before: datetime) -> None:
    retention.record_purge(
        session,
        actor=PURGE_ACTOR,
        action="outbox.purged",
        table=OutboxMessage.__tablename__,
        purged=purged,
        before=completed_before,
    )
