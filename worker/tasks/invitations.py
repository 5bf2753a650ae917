"""Invitation delivery (one email per send, retried with backoff) and the expiry sweep."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, text

from connectors import email, invitation_email
from models import retry_lease
from models.actions import invitations, local_mail
from models.actor import Actor
from models.backoff import backoff
from models.base import utcnow
from models.text import visible
from worker import turns
from worker.runtime import KEPT_LOCALLY, Runtime, runtime, smtp_config
from worker.tasks.base import TransientError, task

log = structlog.get_logger(__name__)

SWEEP_KEY = 0x0D0C_1E_E7  # the advisory-lock id of the expiry sweep


@task("invitations.deliver", bind=True, autoretry_for=())
def deliver(self: Any, invitation_id: str, send_number: int) -> None:
    current = runtime()
    settings = current.settings
    with current.sessions() as session:
        plan = invitations.plan_delivery(
            session,
            invitation_id=uuid.UUID(invitation_id),
            send_number=send_number,
            secret_key=settings.secret_key,
        )
        try:
            claim = invitations.claim_send(session, plan=plan, now=utcnow()) if plan else None
        except invitations.SendInProgress as busy:
            session.rollback()
            raise self.retry(
                exc=TransientError(str(busy)), countdown=_later(self, busy), max_retries=None
            ) from None
        session.commit()  # the claim is visible before the send; no lock held during it
    if plan is None or claim is None:
        return
    status, detail, kept = _send(plan)
    with current.sessions() as session:
        if kept is not None:  # no SMTP server: the mail is kept with the record of its send
            local_mail.keep_mail(
                session,
                email=kept,
                organisation_id=plan.organisation_id,
                secret_key=settings.secret_key,
                actor=Actor.system("invitations.deliver"),
            )
        due = invitations.finish_send(
            session,
            delivery_id=claim,
            status=status,
            detail=detail,
            retry_base=settings.invitation_retry_base,
            retry_max=settings.invitation_retry_max,
        )
        session.commit()
    if due is not None:  # failed: the next attempt once it is due
        raise self.retry(exc=TransientError(detail), countdown=due, max_retries=None)


def _later(task: Any, busy: invitations.SendInProgress) -> float:
    """When to look again at a send another attempt holds: once a failed attempt's backoff
    is over; for one being sent (it may end any moment), with the backoff of this task's
    retries and no later than its lease (in case that worker died)."""
    left = retry_lease.time_left(busy.until, utcnow()) + 1
    if not busy.sending:
        return left
    settings = runtime().settings
    retries = task.request.retries + 1
    return backoff(retries, retry_base=settings.invitation_retry_base, retry_max=left)


def _send(plan: invitations.DeliveryPlan) -> tuple[str, str, email.Email | None]:
    """Send the email for this send: ("sent" | "failed" | "rejected", detail, the mail to
    keep in the local outbox when no SMTP server is configured)."""
    settings = runtime().settings
    config = smtp_config(settings)
    if plan.token is None:
        return (
            "rejected",
            "SECRET_KEY changed since this link was issued; resend the invitation",
            None,
        )
    message = invitation_email.build(
        invitation_email.InvitationEmail(
            to=plan.to,
            link=f"{settings.public_base_url.rstrip('/')}/enroll/{plan.token}",
            # Names chosen by others, with their invisible characters marked (the address
            # itself is an identifier, which has none).
            organisation=visible(plan.organisation),
            role=plan.role,
            inviter=visible(plan.inviter),
            expires_at=plan.expires_at,
            # The same Message-ID for every attempt of one send, so mail clients fold a
            # duplicate if a crash ever falls between sending and recording.
            message_id=f"<invitation-{plan.invitation_id}-{plan.send_number}@odock-sync>",
        )
    )
    if config is None:
        return "sent", KEPT_LOCALLY, message
    try:
        email.send(config, message)
    except email.EmailUnavailable as exc:
        log.warning("invitation.delivery_failed", invitation_id=str(plan.invitation_id))
        return "failed", str(exc), None
    except email.EmailRejected as exc:
        return "rejected", str(exc), None
    log.info("invitation.delivered", invitation_id=str(plan.invitation_id), send=plan.send_number)
    return "sent", "", None


@task("invitations.expire_overdue")
def expire_overdue() -> int:
    """Expire every overdue pending invitation, one committed batch at a time."""
    current = runtime()
    with sweep_lock(current.engine) as mine:
        if not mine:
            log.info("invitations.expiry_already_running")
            return 0
        now, actor = utcnow(), Actor.schedule("invitations.expire_overdue")
        if current.engine.dialect.name == "postgresql":
            total = _sweep_page_ranges(current, now, actor)
        else:
            total = _sweep_batches(current, now, actor)
        log.info("invitations.expired", count=total)
        return total


def _sweep_page_ranges(current: Runtime, now: datetime, actor: Actor) -> int:
    """PostgreSQL: walk pending_invitations once, a range of pages per batch, in the order
    its rows were written (the invitations' order too, so each of their pages is rewritten
    once, not once per batch). Rows added during the run are not overdue yet."""
    limit = current.settings.invitation_expiry_batch_size
    pages = max(1, limit // invitations.PENDING_PER_PAGE)
    with current.sessions() as session:
        end = invitations.pending_pages(session)
    total = 0
    for first_page in range(0, end, pages):
        with current.sessions() as session:
            # Expiry is idempotent: a batch lost to a crash is redone by the next run, so it
            # need not wait for its WAL flush.
            session.execute(text("SET LOCAL synchronous_commit = off"))
            total += invitations.expire_overdue_on_pages(
                session, now=now, actor=actor, first_page=first_page, pages=pages
            )
            session.commit()
    return total


def _sweep_batches(current: Runtime, now: datetime, actor: Actor) -> int:
    limit, total = current.settings.invitation_expiry_batch_size, 0
    while True:
        with current.sessions() as session:
            expired = invitations.expire_overdue(session, now=now, limit=limit, actor=actor)
            session.commit()
        total += expired
        if expired < limit:
            return total


def sweep_lock(engine: Engine) -> AbstractContextManager[turns.Turn]:
    """One sweep at a time across workers."""
    return turns.turn(engine, SWEEP_KEY)
