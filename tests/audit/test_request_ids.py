"""A request's id reaches the audit events a task it queued writes later, in the worker."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models import outbox, request_ids
from models.base import utcnow
from models.entities import ApiToken, AuditEvent
from tests.support import factories as f
from tests.support.relay import wait_relaying


def _expired_token(session) -> ApiToken:
    org = f.make_org(session)
    f.scim_token(session, org)
    token = session.scalars(select(ApiToken).where(ApiToken.organisation_id == org.id)).one()
    token.expires_at = utcnow() - timedelta(minutes=1)
    return token


def _expiry_event(sessions):
    with sessions() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.action == "token.expired")
        ).first()


def test_a_task_queued_by_a_request_audits_under_that_request_id(session, sessions, worker) -> None:
    _expired_token(session)
    bound = request_ids.bind("trace-from-the-web-1")
    try:
        outbox.enqueue(session, "tokens.note_expired")
        session.commit()
    finally:
        request_ids.reset(bound)
    event = wait_relaying(lambda: _expiry_event(sessions), what="token.expired audited")
    assert event.request_id == "trace-from-the-web-1"


def test_a_scheduled_task_gets_an_id_of_its_own(session, sessions, worker) -> None:
    _expired_token(session)
    outbox.enqueue(session, "tokens.note_expired")  # no request bound: like a beat job
    session.commit()
    event = wait_relaying(lambda: _expiry_event(sessions), what="token.expired audited")
    assert event.request_id and event.request_id.startswith("req_")
