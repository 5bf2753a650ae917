"""What counts as the gateway's acknowledgement of an invalidation: Odock's own answer in JSON
(connectors/odock_answers.py), as for the store's commands. Against a real loopback server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from models.actions import cutoffs
from models.base import utcnow
from models.entities import AuditEvent, KeyCutoff, KeyInvalidation
from tests.cutoffs.test_cutoffs import REAPER, revoked_keys

INVALIDATE = "/gateway/v1/internal/cache/invalidate"
PORTAL = "<html><body><h1>Sign in to the guest network</h1></body></html>"


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (PORTAL, "text/html; charset=utf-8", "answered 200, not Odock's JSON (text/html)"),
        ("OK", None, "answered 200, not Odock's JSON"),
        (PORTAL, "application/json", "without a JSON object"),
    ],
    ids=["captive portal", "no content type", "html labelled json"],
)
def test_a_page_answered_200_is_no_invalidation(
    session, sessions, httpserver, settings, body, content_type, said
):
    """A captive portal, or GATEWAY_URL pointing at some web server, answered the invalidation
    200 with its page: the cut-off was closed, the findings resolved and the key audited as
    forgotten while every gateway node still cached it. It is now a failed attempt: the cut-off
    stays open, due again with backoff, and alarms past CUTOFF_DEADLINE."""
    from worker.tasks import gateway

    _org, _admin, key_ids = revoked_keys(session)
    session.commit()
    answer = Response(body, status=200)
    if content_type is None:
        del answer.headers["Content-Type"]
    else:
        answer.headers["Content-Type"] = content_type
    httpserver.expect_request(INVALIDATE, method="POST").respond_with_response(answer)

    called_from = utcnow()
    assert gateway.drive(key_ids=key_ids, reason="revoked") == []

    assert [request.path for request, _ in httpserver.log] == [INVALIDATE]
    # Due again after the first failure's backoff, counted from before the call: a margin
    # counted from the check's own clock fails whenever the machine stalls past it.
    due_again = called_from + timedelta(seconds=settings.cutoff_retry_base)
    with sessions() as fresh:
        open_cutoffs = fresh.scalars(select(KeyCutoff).where(KeyCutoff.key_id.in_(key_ids))).all()
        assert len(open_cutoffs) == len(key_ids)
        for cutoff in open_cutoffs:
            failed = (cutoff.acknowledged_at, cutoff.leased_until, cutoff.attempts)
            assert failed == (None, None, 1), cutoff.last_error
            assert said in (cutoff.last_error or ""), cutoff.last_error
            assert cutoff.next_attempt_at >= due_again, (cutoff.next_attempt_at, called_from)
        assert fresh.scalars(select(KeyInvalidation)).all() == []
        forgotten = select(AuditEvent).where(AuditEvent.action == "api_key.gateway_invalidated")
        assert fresh.scalars(forgotten).all() == []
        later = utcnow() + timedelta(hours=1)
        (incident,) = cutoffs.raise_alarms(
            fresh, deadline=timedelta(seconds=60), actor=REAPER, now=later
        )
        assert incident.keys_overdue == len(key_ids)
        fresh.rollback()


@pytest.mark.parametrize(
    "answer",
    [
        Response('{"invalidated": 2}', status=200, content_type="application/json"),
        Response(status=204),
        Response("", status=200, content_type="text/plain"),
    ],
    ids=["json object", "204 no content", "200 empty"],
)
def test_odocks_acknowledgement_is_an_invalidation(session, sessions, httpserver, answer):
    """The same call answered as the contract says closes the cut-offs: a JSON object, or no
    body at all, as the contract first had it ("2xx once done, the body is not read"), so a
    gateway or adapter built to it is not refused for ever. An empty answer is nobody's page."""
    from worker.tasks import gateway

    _org, _admin, key_ids = revoked_keys(session)
    session.commit()
    httpserver.expect_request(INVALIDATE, method="POST").respond_with_response(answer)

    gateway.drive(key_ids=key_ids, reason="revoked")

    with sessions() as fresh:
        cutoffs_done = fresh.scalars(select(KeyCutoff).where(KeyCutoff.key_id.in_(key_ids)))
        assert all(cutoff.acknowledged_at is not None for cutoff in cutoffs_done)
