"""Re-sending a notification delivery through the admin API (the CLI: tests/cli/test_resend.py):
through a real worker to a real loopback receiver that failed it first; the same payload under
the same webhook id, signed afresh, audited as who re-sent what; bad ids answered 404 in the
API's problem format."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from connectors.signed_webhooks import verify
from models.actions import notification_hooks
from models.entities import AuditEvent, DeliveryAttempt, NotificationDelivery, OutboxMessage
from models.enums import DeliveryStatus, HookKind, Role
from models.notifications import notify
from tests.reviews.test_deliveries import add_hook, settled
from tests.support import factories as f
from tests.support.factories import LOOPBACK


@pytest.fixture
def admin(session):
    org = f.make_org(session)
    person = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    token = f.admin_token(session, org, person)
    session.commit()
    return org, person, {"Authorization": f"Bearer {token}"}


def failed_delivery(
    session, org, hook_id, *, event="review.opened", attempts=1
) -> NotificationDelivery:
    """A delivery that gave up after `attempts` refused tries, with no task left for it."""
    delivery = NotificationDelivery(
        organisation_id=org.id,
        event_id=uuid.uuid4().hex,
        event=event,
        target_key=f"hook:{hook_id}",
        hook_id=hook_id,
        payload={"note": "x"},
        status=DeliveryStatus.FAILED,
        attempts=attempts,
        last_error="HTTP 503",
    )
    session.add(delivery)
    session.flush()
    session.add_all(
        DeliveryAttempt(delivery_id=delivery.id, ok=False, status_code=503, error="HTTP 503")
        for _ in range(attempts)
    )
    session.commit()
    return delivery


def test_a_delivery_the_receiver_failed_is_resent_under_the_same_webhook_id(
    client, session, sessions, settings, worker, hooks, admin
) -> None:
    org, person, headers = admin
    hook, secret = add_hook(
        session, settings, org, HookKind.WEBHOOK, hooks.url("down"), events=["review.opened"]
    )  # not the hook.disabled alert, which would race the re-send to the mended receiver
    hooks.always_fail.add("down")
    event_id = notify(
        session, organisation_id=org.id, event="review.opened", payload={"review_id": None}
    )
    session.commit()
    (failed,) = settled(sessions, event_id, 1)
    assert failed.status is DeliveryStatus.FAILED  # the hook was disabled after 6 failures

    refused = client.post(f"/api/v1/notification-deliveries/{failed.id}/resend", headers=headers)
    assert refused.status_code == 409 and "disabled" in refused.get_json()["detail"]

    hooks.always_fail.discard("down")  # the receiver is mended, its hook enabled again
    with sessions() as fresh:
        notification_hooks.update_hook(
            fresh,
            hook=notification_hooks.get_hook(fresh, org.id, hook.id),
            actor=f.SETUP,
            url_policy=LOOPBACK,
            enabled=True,
        )
        fresh.commit()
    time.sleep(1.1)  # so a signature made now has a later timestamp than the failed ones
    asked_at = int(time.time())
    answer = client.post(f"/api/v1/notification-deliveries/{failed.id}/resend", headers=headers)
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "pending" and answer.get_json()["resends"] == 1

    (resent,) = settled(sessions, event_id, 1)
    assert resent.status is DeliveryStatus.DELIVERED
    assert (resent.attempts, resent.resends) == (failed.attempts + 1, 1)
    received = hooks.at("down")
    first, last = received[0], received[-1]
    assert [r.status for r in received] == [503] * failed.attempts + [200]
    assert {r.headers["Webhook-Id"] for r in received} == {str(failed.id)}
    assert last.body == first.body  # the same message
    assert verify([secret], body=last.body, headers=last.headers) == str(failed.id)
    assert (
        int(last.headers["Webhook-Timestamp"]) >= asked_at > int(first.headers["Webhook-Timestamp"])
    )
    with sessions() as fresh:
        event = fresh.scalar(
            select(AuditEvent).where(AuditEvent.action == "notification_delivery.resent")
        )
        assert (event.actor, event.actor_user_id) == (person.email, person.id)
        assert event.target_id == str(failed.id)
        assert event.before == {"status": "failed", "attempts": failed.attempts}
        assert event.after["status"] == "pending" and event.after["to"] == f"hook:{hook.id}"


def test_a_resent_delivery_gets_a_fresh_budget_of_attempts(session, settings, admin) -> None:
    from models.actions.notification_deliveries import (
        AttemptResult,
        Outcome,
        record_attempt,
        resend_delivery,
    )

    org, _person, _headers = admin
    hook, _secret = add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org, hook.id, attempts=12)
    resend_delivery(session, delivery=delivery, actor=f.SETUP)
    outcome = record_attempt(
        session,
        delivery=delivery,
        result=AttemptResult(False, status_code=503, error="HTTP 503"),
        max_attempts=12,
        disable_after_failures=100,
    )
    assert outcome is Outcome.RETRY  # not FAILED at once for the 12 attempts before
    session.rollback()


def problem_of(answer) -> dict:
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    return answer.get_json()


@pytest.mark.parametrize(
    "path_id", ["not-a-uuid", "5ff94a04-fd86-4901-bd39-75db3a93c94c", "other-org"]
)
@pytest.mark.parametrize("action", ["", "/resend"])
def test_bad_delivery_ids_are_a_clear_404(
    client, session, settings, admin, path_id, action
) -> None:
    _org, _person, headers = admin
    if path_id == "other-org":
        other = f.make_org(session)
        hook, _ = add_hook(session, settings, other, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
        path_id = str(failed_delivery(session, other, hook.id).id)
    method = client.post if action else client.get
    answer = method(f"/api/v1/notification-deliveries/{path_id}{action}", headers=headers)
    assert answer.status_code == 404
    assert problem_of(answer)["status"] == 404
    assert session.scalar(select(OutboxMessage.id)) is None  # nothing was queued


def test_a_delivery_still_being_sent_is_not_resent(client, session, settings, admin) -> None:
    org, _person, headers = admin
    hook, _ = add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org, hook.id)
    delivery.status = DeliveryStatus.PENDING
    session.commit()
    answer = client.post(f"/api/v1/notification-deliveries/{delivery.id}/resend", headers=headers)
    assert answer.status_code == 409
    assert "still being sent" in problem_of(answer)["detail"]


def test_only_admins_resend(client, session, settings, admin) -> None:
    org, _person, _headers = admin
    manager = f.make_user(session, org, role=Role.MANAGER)
    token = f.admin_token(session, org, manager)
    hook, _ = add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org, hook.id)
    answer = client.post(
        f"/api/v1/notification-deliveries/{delivery.id}/resend",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403
    session.expire_all()
    assert session.get_one(NotificationDelivery, delivery.id).status is DeliveryStatus.FAILED
