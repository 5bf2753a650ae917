"""Fanning a notification event out to deliveries, and keeping each delivery's log.

One delivery per (event, destination), made unique by the database, each sent by its own
task. A send is claimed with a short lease (never a lock held across the network call), and
every attempt is logged. A hook that keeps failing is disabled and the admins are told.

A hook deleted while one of its deliveries is being sent takes the delivery with it (ON DELETE
CASCADE): the send was claimed before the delete committed, and its outcome is dropped, not
written to rows that are gone. A send claimed after the delete finds no delivery to claim.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import audit, locked_rows, outbox, retry_lease, unique_rows
from models.actions.notification_hooks import subscribed
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    DeliveryAttempt,
    NotificationDelivery,
    NotificationHook,
    User,
)
from models.enums import DeliveryStatus, Role, UserStatus
from models.errors import Conflict, NotFound
from models.notifications import notify

TASK_DELIVER = "notifications.deliver"
EVENT_HOOK_DISABLED = "hook.disabled"
RECIPIENT_BATCH = 10_000


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"  # the delivery (with its hook) was deleted while it was being sent


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    permanent: bool = False
    retry_after: float | None = None  # the receiver asked to be left alone this long


def plan_deliveries(
    session: Session,
    *,
    event_id: str,
    organisation_id: uuid.UUID,
    event: str,
    payload: dict[str, Any],
    recipient_user_ids: list[uuid.UUID],
) -> list[NotificationDelivery]:
    """One delivery per subscribed hook and per recipient; re-running plans nothing new,
    nor does a second dispatch of the event at once (at least once: a relay's re-publish):
    it waits for the first, whose deliveries take the (event, target) keys, and plans what
    is left."""
    review_id = _uuid_or_none(payload.get("review_id"))
    hooks = session.scalars(
        select(NotificationHook).where(
            NotificationHook.organisation_id == organisation_id,
            NotificationHook.enabled.is_(True),
        )
    )
    targets: list[tuple[str, dict[str, Any]]] = [
        (f"hook:{hook.id}", {"hook_id": hook.id}) for hook in hooks if subscribed(hook, event)
    ]
    targets += [
        (f"user:{uid}", {"recipient_user_id": uid, "recipient_email": email})
        for uid, email in _recipients(session, organisation_id, recipient_user_ids)
    ]
    for _ in range(unique_rows.ATTEMPTS):
        known = set(
            session.scalars(
                select(NotificationDelivery.target_key).where(
                    NotificationDelivery.event_id == event_id
                )
            )
        )
        planned = [
            NotificationDelivery(
                organisation_id=organisation_id,
                event_id=event_id,
                event=event,
                target_key=target_key,
                review_id=review_id,
                payload=payload,
                **fields,
            )
            for target_key, fields in targets
            if target_key not in known
        ]
        if not planned or unique_rows.written(session, planned):
            break
    else:
        raise RuntimeError(f"notification {event_id}: deliveries neither planned nor found")
    for delivery in planned:
        outbox.enqueue(session, TASK_DELIVER, delivery_id=str(delivery.id))
    return planned


def _recipients(
    session: Session, organisation_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, str]]:
    """The recipients' addresses, read a batch of ids at a time: a campaign can tell more
    people than one statement may name on SQLite (32,766 bound parameters)."""
    unique = list(dict.fromkeys(user_ids))
    people: list[tuple[uuid.UUID, str]] = []
    for start in range(0, len(unique), RECIPIENT_BATCH):
        batch = unique[start : start + RECIPIENT_BATCH]
        rows = session.execute(
            select(User.id, User.email).where(
                User.id.in_(batch), User.organisation_id == organisation_id
            )
        )
        people += [(user_id, email) for user_id, email in rows]
    return people


def claim_delivery(
    session: Session, *, delivery_id: uuid.UUID, lease: timedelta, now: datetime | None = None
) -> NotificationDelivery | None:
    """Take the right to send this delivery now; None if it is done or someone else holds it."""
    now = now or utcnow()
    claimed = session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == delivery_id,
            NotificationDelivery.status == DeliveryStatus.PENDING,
            (NotificationDelivery.claimed_until.is_(None))
            | (NotificationDelivery.claimed_until < now),
        )
        .values(claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        return None
    return session.get(NotificationDelivery, delivery_id, populate_existing=True)


def lease_remaining(session: Session, *, delivery_id: uuid.UUID) -> float | None:
    """Seconds until another sender's lease on a pending delivery expires, or until a delivery
    waiting out its backoff is due; None if not pending."""
    row = session.execute(
        select(NotificationDelivery.status, NotificationDelivery.claimed_until).where(
            NotificationDelivery.id == delivery_id
        )
    ).one_or_none()
    if row is None or row.status is not DeliveryStatus.PENDING:
        return None
    return retry_lease.time_left(row.claimed_until, utcnow())


def record_attempt(
    session: Session,
    *,
    delivery: NotificationDelivery,
    result: AttemptResult,
    max_attempts: int,
    disable_after_failures: int,
    retry_base: float = 0.0,
    retry_max: float = 0.0,
    now: datetime | None = None,
) -> Outcome:
    """Log the attempt, settle the delivery, and count the hook's failures; GONE, writing
    nothing, when the delivery or its hook was deleted while it was being sent. A delivery
    to retry keeps its lease until its next attempt is due (`retry_wait`): another copy of
    its task (the outbox relay's re-send) waits for it instead of sending early."""
    now = now or utcnow()
    # Locked and read again, the hook first as its delete takes them (then its deliveries):
    # a delete that committed meanwhile leaves nothing to find, one under way waits for this.
    hook = None
    if delivery.hook_id is not None:
        hook = locked_rows.locked_or_none(session, NotificationHook, delivery.hook_id)
        if hook is None:
            return Outcome.GONE
    if locked_rows.locked_or_none(session, NotificationDelivery, delivery.id) is None:
        return Outcome.GONE
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            ok=result.ok,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
    )
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.claimed_until = None
    if result.ok:
        delivery.status, delivery.delivered_at, delivery.last_error = (
            DeliveryStatus.DELIVERED,
            now,
            None,
        )
        if hook is not None:
            hook.consecutive_failures, hook.first_failure_at, hook.last_success_at = 0, None, now
        return Outcome.DELIVERED
    delivery.last_error = result.error
    if hook is not None:
        _count_failure(session, hook, disable_after_failures, now)
    spent = delivery.attempts_since_resend
    if result.permanent or spent >= max_attempts or (hook and not hook.enabled):
        delivery.status = DeliveryStatus.FAILED
        return Outcome.FAILED
    _, delivery.claimed_until = retry_lease.held_after_failure(
        now,
        delivery.attempts_since_resend,
        retry_base=retry_base,
        retry_max=retry_max,
        asked=result.retry_after,
    )
    return Outcome.RETRY


def retry_wait(
    delivery: NotificationDelivery, result: AttemptResult, *, retry_base: float, retry_max: float
) -> float:
    """Seconds from a failed attempt to the next: the backoff of the current budget's
    attempts, and no sooner than the receiver asked (its Retry-After), at most `retry_max`."""
    wait, _ = retry_lease.held_after_failure(
        utcnow(),
        delivery.attempts_since_resend,
        retry_base=retry_base,
        retry_max=retry_max,
        asked=result.retry_after,
    )
    return wait


def get_notification_delivery(
    session: Session, organisation_id: uuid.UUID, delivery_id: uuid.UUID
) -> NotificationDelivery:
    delivery = session.get(NotificationDelivery, delivery_id)
    if delivery is None or delivery.organisation_id != organisation_id:
        raise NotFound("notification delivery not found", delivery_id=str(delivery_id))
    return delivery


def resend_delivery(session: Session, *, delivery: NotificationDelivery, actor: Actor) -> None:
    """Send a settled delivery once more, with a fresh budget of attempts.

    It stays the same delivery: the same payload under the same webhook id (the delivery's
    id), so a receiver that got it before recognises it; the signature and its timestamp are
    made afresh when the worker sends it. Every attempt stays in its log.
    """
    if delivery.status is DeliveryStatus.PENDING:
        raise Conflict("this delivery is still being sent; the worker retries it by itself")
    hook = session.get(NotificationHook, delivery.hook_id) if delivery.hook_id else None
    if hook is not None and not hook.enabled:
        raise Conflict(f"hook {hook.name!r} is disabled; enable it before re-sending")
    before = {"status": delivery.status.value, "attempts": delivery.attempts}
    reopened = session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == delivery.id,
            NotificationDelivery.status == delivery.status,  # two admins at once: one wins
        )
        .values(
            status=DeliveryStatus.PENDING,
            resends=NotificationDelivery.resends + 1,
            attempts_at_resend=NotificationDelivery.attempts,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(reopened, "rowcount", 0):
        raise Conflict("this delivery changed meanwhile; reload and try again")
    session.refresh(delivery)
    outbox.enqueue(session, TASK_DELIVER, delivery_id=str(delivery.id))
    audit.record_change(
        session,
        actor=actor,
        subject=delivery,
        action="notification_delivery.resent",
        target_type="notification_delivery",
        before=before,
        after={
            "status": delivery.status.value,
            "resends": delivery.resends,
            "event": delivery.event,
            "to": _destination(delivery),
        },
    )


def _destination(delivery: NotificationDelivery) -> str:
    if delivery.hook_id:
        return f"hook:{delivery.hook_id}"
    return delivery.recipient_email or delivery.target_key


def skip_delivery(session: Session, *, delivery: NotificationDelivery, reason: str) -> None:
    delivery.status, delivery.last_error, delivery.claimed_until = (
        DeliveryStatus.SKIPPED,
        reason,
        None,
    )


def _count_failure(
    session: Session, hook: NotificationHook, disable_after: int, now: datetime
) -> None:
    hook.consecutive_failures += 1
    hook.first_failure_at = hook.first_failure_at or now
    if hook.enabled and hook.consecutive_failures >= disable_after:
        hook.enabled, hook.disabled_at = False, now
        hook.disabled_reason = f"{hook.consecutive_failures} failed deliveries in a row"
        actor = Actor.system("notifications")
        audit.record_change(
            session,
            actor=actor,
            subject=hook,
            action="hook.disabled",
            target_type="notification_hook",
            before={"enabled": True},
            after={"enabled": False, "reason": hook.disabled_reason},
        )
        admins = session.scalars(
            select(User.id).where(
                User.organisation_id == hook.organisation_id,
                User.role == Role.ORG_ADMIN,
                User.status == UserStatus.ACTIVE,
            )
        )
        notify(
            session,
            organisation_id=hook.organisation_id,
            event=EVENT_HOOK_DISABLED,
            payload={
                "hook": {"id": str(hook.id), "name": hook.name, "kind": hook.kind.value},
                "message": f"Hook {hook.name!r} was disabled after "
                f"{hook.consecutive_failures} failed deliveries in a row; re-enable it once "
                "its endpoint works again.",
            },
            recipient_user_ids=list(admins),
        )


def deliveries_of(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    hook_id: uuid.UUID | None = None,
    review_id: uuid.UUID | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log, newest first, with every attempt."""
    query = select(NotificationDelivery).where(
        NotificationDelivery.organisation_id == organisation_id
    )
    if hook_id is not None:
        query = query.where(NotificationDelivery.hook_id == hook_id)
    if review_id is not None:
        query = query.where(NotificationDelivery.review_id == review_id)
    rows = list(
        session.scalars(query.order_by(NotificationDelivery.created_at.desc()).limit(limit))
    )
    attempts: dict[uuid.UUID, list[DeliveryAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
            .order_by(DeliveryAttempt.attempted_at)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [_delivery_view(row, attempts[row.id]) for row in rows]


def delivery_view(session: Session, delivery: NotificationDelivery) -> dict[str, Any]:
    """One delivery with every attempt, as the log shows it."""
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.attempted_at)
    )
    return _delivery_view(delivery, list(attempts))


def _delivery_view(
    delivery: NotificationDelivery, attempts: list[DeliveryAttempt]
) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "event_id": delivery.event_id,
        "event": delivery.event,
        "hook_id": str(delivery.hook_id) if delivery.hook_id else None,
        "recipient_email": delivery.recipient_email,
        "status": delivery.status.value,
        "resends": delivery.resends,
        "attempts": [
            {
                "at": a.attempted_at.isoformat(),
                "ok": a.ok,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "last_error": delivery.last_error,
    }


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
