"""Through the real receiver, the outbox and a real Celery worker."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.identities import link_identity
from models.entities import OutboxMessage, ReceivedDelivery, Revocation, User
from models.enums import Source, UserStatus
from tests.events import okta_payloads as okta
from tests.events.conftest import generic, okta_headers, signed
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until


def processed(sessions, delivery_id: str) -> ReceivedDelivery | None:
    with sessions() as fresh:
        delivery = fresh.scalar(
            select(ReceivedDelivery).where(ReceivedDelivery.delivery_id == delivery_id)
        )
        return delivery if delivery is not None and delivery.status == "processed" else None


def review_message(sessions) -> bool:
    with sessions() as fresh:
        message = fresh.scalar(
            select(OutboxMessage).where(OutboxMessage.task == "reviews.open_for_revocation")
        )
        return message is not None and message.dispatched_at is not None


def test_okta_deactivate_revokes_the_user_and_opens_the_revocation_review(
    session, sessions, client, worker, hooked, httpserver
):
    httpserver.expect_request("/gateway/v1/internal/cache/invalidate").respond_with_json({})
    user = f.make_user(session, hooked.org, email="jane.doe@example.com")
    key = f.make_key(session, hooked.org, owner=user)
    link_identity(
        session, user=user, source=Source.OKTA, external_id="00u1qw1mqitPHM8AJ0g8", actor=f.SETUP
    )
    session.commit()
    target = okta.user_target("00u1qw1mqitPHM8AJ0g8", "jane.doe@example.com")
    payload = okta.delivery(okta.event("user.lifecycle.deactivate", [target]))

    responses = [
        client.post(hooked.okta_url, json=payload, headers=okta_headers()) for _ in range(3)
    ]

    assert [r.json["status"] for r in responses] == ["accepted", "duplicate", "duplicate"]
    delivery = wait_until(lambda: processed(sessions, payload["eventId"]), what="processing")
    assert delivery.results[0]["outcome"] == "applied" and delivery.attempts == 1
    wait_relaying(lambda: review_message(sessions), what="the review task handed to the broker")
    with sessions() as fresh:
        assert fresh.get_one(User, user.id).status is UserStatus.REVOKED
        revocation = fresh.scalars(select(Revocation)).one()  # applied exactly once
        assert revocation.user_id == user.id and revocation.source is Source.OKTA
        review = fresh.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "reviews.open_for_revocation")
        ).one()
        assert review.kwargs == {"revocation_id": str(revocation.id)}
        invalidation = fresh.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
        ).one()
        assert invalidation.kwargs["key_ids"] == [str(key.id)]


def test_signed_generic_event_applies_once_and_bad_signatures_never(
    session, sessions, client, worker, hooked
):
    user = f.make_user(session, hooked.org, email="ada@example.com")
    session.commit()
    event = generic("user.deactivated", user={"email": "ada@example.com"})
    body, headers = signed(hooked.signing_secret, event)
    forged = {**headers, "webhook-id": "msg_forged"}

    assert client.post(hooked.events_url, data=body, headers=forged).status_code == 401
    assert client.post(hooked.events_url, data=body, headers=headers).status_code == 202
    assert client.post(hooked.events_url, data=body, headers=headers).status_code == 200

    delivery = wait_until(lambda: processed(sessions, headers["webhook-id"]), what="processing")
    assert delivery.applied_count == 1
    with sessions() as fresh:
        assert fresh.get_one(User, user.id).status is UserStatus.REVOKED
        assert len(fresh.scalars(select(Revocation)).all()) == 1
        ids = fresh.scalars(select(ReceivedDelivery.delivery_id)).all()
        assert ids == [headers["webhook-id"]]
