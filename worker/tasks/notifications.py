"""Notification tasks: fan an event out, then send each delivery with backoff until it lands."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from connectors import email as smtp
from connectors import notify_formats
from connectors.outbound import PostResult, UnsafeUrl, check_url, post_json
from connectors.signed_webhooks import sign_all
from models.access import is_leaver
from models.actions import local_mail
from models.actions import notification_deliveries as deliveries
from models.actions.notification_hooks import signing_secrets
from models.actor import Actor
from models.entities import NotificationDelivery, NotificationHook
from models.enums import HookKind
from models.settings import Settings
from models.signed_links import REVIEW_ACK_PURPOSE, make_token
from models.text import visible_strings
from worker.runtime import runtime, smtp_config
from worker.tasks.base import task

log = structlog.get_logger(__name__)

REVIEW_EVENTS = ("review.opened", "review.escalated", "finding.urgent")


@task("notifications.dispatch")
def dispatch(
    event_id: str,
    organisation_id: str,
    event: str,
    payload: dict[str, Any],
    recipient_user_ids: list[str],
) -> None:
    with runtime().sessions() as session:
        deliveries.plan_deliveries(
            session,
            event_id=event_id,
            organisation_id=uuid.UUID(organisation_id),
            event=event,
            payload=payload,
            recipient_user_ids=[uuid.UUID(u) for u in recipient_user_ids],
        )
        session.commit()


@task("notifications.deliver", bind=True, autoretry_for=())
def deliver(self: Any, delivery_id: str) -> str:
    current = runtime()
    settings = current.settings
    lease = timedelta(seconds=settings.notification_timeout * 3 + 30)
    with current.sessions() as session:
        delivery = deliveries.claim_delivery(
            session, delivery_id=uuid.UUID(delivery_id), lease=lease
        )
        if delivery is None:
            session.commit()
            held = deliveries.lease_remaining(session, delivery_id=uuid.UUID(delivery_id))
            session.rollback()
            if held is None:
                return "done or gone"
            # Another worker holds the lease, or the delivery waits out its backoff: come back
            # when it ends (in case that worker died, or this is the only copy left).
            raise self.retry(countdown=held + 1, max_retries=None)
        # Read in the claim's transaction: a hook deleted before it commits leaves no delivery
        # to claim, and one deleted after finds this send already under way.
        hook = session.get(NotificationHook, delivery.hook_id) if delivery.hook_id else None
        if delivery.hook_id and (hook is None or not hook.enabled):
            deliveries.skip_delivery(session, delivery=delivery, reason="hook disabled or removed")
            session.commit()
            return "skipped"
        leaver = bool(delivery.recipient_email) and is_leaver(
            session, delivery.organisation_id, delivery.recipient_email or ""
        )
        # No transaction open while sending: on SQLite it would hold the write lock, and every
        # writer (an admin deleting this hook) would wait on the receiver.
        session.commit()
        result = send_delivery(session, settings, delivery, hook, acknowledgeable=not leaver)
        retry_base, retry_max = settings.notification_retry_base, settings.notification_retry_max
        outcome = deliveries.record_attempt(
            session,
            delivery=delivery,
            result=result,
            max_attempts=settings.notification_max_attempts,
            disable_after_failures=settings.hook_disable_after_failures,
            retry_base=retry_base,
            retry_max=retry_max,
        )
        if outcome is deliveries.Outcome.GONE:
            session.rollback()  # nothing of it kept (a mail put aside for a deleted hook)
            log.info("notifications.deliver.target_deleted", delivery_id=delivery_id, ok=result.ok)
            return outcome.value
        # A re-send's backoff starts afresh (the attempts of its budget).
        wait = deliveries.retry_wait(delivery, result, retry_base=retry_base, retry_max=retry_max)
        session.commit()
    if outcome is deliveries.Outcome.RETRY:
        raise self.retry(countdown=wait, max_retries=None)
    return outcome.value


def send_delivery(
    session: Session,
    settings: Settings,
    delivery: NotificationDelivery,
    hook: NotificationHook | None,
    *,
    acknowledgeable: bool = True,
) -> deliveries.AttemptResult:
    """Render the delivery for its channel and send it once (with no acknowledgement link
    when the recipient may not acknowledge: a leaver). Email with no SMTP server configured is
    kept in the local outbox, in `session`'s transaction."""
    recipient = delivery.recipient_email or (f"hook:{hook.name}" if hook else "unknown")
    ack_url = _ack_url(settings, delivery, recipient) if acknowledgeable else None
    if hook is None or hook.kind is HookKind.EMAIL:
        address = hook.target if hook else delivery.recipient_email or ""
        return _send_email(session, settings, delivery, address, ack_url)
    policy = settings.outbound_policy()
    try:
        check_url(hook.target, policy)
    except UnsafeUrl as exc:
        return deliveries.AttemptResult(False, error=f"refused: {exc.reason}", permanent=True)
    if hook.kind is HookKind.SLACK:
        # People read Slack and email: names there have their invisible characters marked.
        # The signed webhook's JSON carries them as data (escaped \uXXXX, never raw).
        body = notify_formats.slack_body(
            event=delivery.event, payload=visible_strings(delivery.payload), ack_url=ack_url
        )
        return _as_attempt(
            post_json(hook.target, body, {}, timeout=settings.notification_timeout, policy=policy)
        )
    data = dict(delivery.payload)
    if ack_url:
        data["links"] = {"acknowledge": ack_url}
    body = notify_formats.webhook_body(
        event_id=delivery.event_id,
        event=delivery.event,
        timestamp=delivery.created_at.isoformat(),
        payload=data,
    )
    secrets = signing_secrets(hook, settings.secret_key)
    headers = sign_all(secrets, msg_id=str(delivery.id), body=body)
    return _as_attempt(
        post_json(hook.target, body, headers, timeout=settings.notification_timeout, policy=policy)
    )


def _send_email(
    session: Session,
    settings: Settings,
    delivery: NotificationDelivery,
    address: str,
    ack_url: str | None,
) -> deliveries.AttemptResult:
    message = notify_formats.email_message(
        to=address,
        event=delivery.event,
        payload=visible_strings(
            {**delivery.payload, "review_url": _review_url(settings, delivery)}
        ),
        ack_url=ack_url,
        message_id=f"<{delivery.id}@odock-sync>",
    )
    config = smtp_config(settings)
    if config is None:
        local_mail.keep_mail(
            session,
            email=message,
            organisation_id=delivery.organisation_id,
            secret_key=settings.secret_key,
            actor=Actor.system("notifications.deliver"),
        )
        return deliveries.AttemptResult(True)
    try:
        smtp.send(config, message)
    except smtp.EmailRejected as exc:
        return deliveries.AttemptResult(False, error=str(exc), permanent=True)
    except smtp.EmailUnavailable as exc:
        return deliveries.AttemptResult(False, error=str(exc))
    return deliveries.AttemptResult(True)


def _ack_url(settings: Settings, delivery: NotificationDelivery, recipient: str) -> str | None:
    if delivery.review_id is None or delivery.event not in REVIEW_EVENTS:
        return None
    token = make_token(
        settings.secret_key,
        purpose=REVIEW_ACK_PURPOSE,
        subject=str(delivery.review_id),
        actor=recipient,
        lifetime=timedelta(hours=settings.ack_link_lifetime_hours),
        issued_at=delivery.created_at,
    )
    return f"{settings.public_base_url.rstrip('/')}/reviews/acknowledge/{token}"


def _review_url(settings: Settings, delivery: NotificationDelivery) -> str | None:
    if delivery.review_id is None:
        return None
    return f"{settings.public_base_url.rstrip('/')}/api/v1/reviews/{delivery.review_id}"


def _as_attempt(result: PostResult) -> deliveries.AttemptResult:
    return deliveries.AttemptResult(
        result.ok,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
        retry_after=result.retry_after,
    )
