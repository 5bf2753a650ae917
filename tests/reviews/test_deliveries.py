"""Notification deliveries through a real worker to real loopback receivers."""

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from connectors.signed_webhooks import verify
from models.actions import notification_hooks
from models.entities import DeliveryAttempt, NotificationDelivery, NotificationHook
from models.enums import DeliveryStatus, HookKind, Role
from models.notifications import notify
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until


def add_hook(session, settings, org, kind, target, name="hook", events=None):
    return f.make_hook(
        session, org.id, target, secret_key=settings.secret_key, name=name, kind=kind, events=events
    )


def settled(sessions, event_id, count):
    def check():
        with sessions() as fresh:
            rows = fresh.scalars(
                select(NotificationDelivery).where(NotificationDelivery.event_id == event_id)
            ).all()
            done = [r for r in rows if r.status is not DeliveryStatus.PENDING]
            return rows if len(rows) == count and len(done) == count else None

    return wait_relaying(check, what=f"{count} deliveries of {event_id} settled")


def test_a_hook_failing_three_times_gets_exactly_one_effective_signed_delivery(
    session, sessions, settings, worker, hooks
):
    org = f.make_org(session)
    hook, secret = add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("flaky"))
    hooks.fail_first("flaky", 3)
    event_id = notify(
        session, organisation_id=org.id, event="review.opened", payload={"review_id": None, "x": 1}
    )
    session.commit()

    (delivery,) = settled(sessions, event_id, 1)

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 4
    received = hooks.at("flaky")
    assert [r.status for r in received] == [503, 503, 503, 200]
    assert {r.headers["Webhook-Id"] for r in received} == {str(delivery.id)}
    assert len({r.body for r in received}) == 1  # the same message each time
    for r in received:
        assert verify([secret], body=r.body, headers=r.headers) == str(delivery.id)
        Webhook(secret).verify(r.body, r.headers)  # and the reference verifier agrees
    body = received[-1].json
    assert body["type"] == "review.opened" and body["id"] == event_id and body["data"]["x"] == 1
    with sessions() as fresh:
        attempts = fresh.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
        ).all()
        assert sorted((a.ok, a.status_code) for a in attempts) == [(False, 503)] * 3 + [(True, 200)]
        assert fresh.get(NotificationHook, hook.id).consecutive_failures == 0


def test_rotated_secrets_both_sign_so_receivers_on_either_secret_verify(
    session, sessions, settings, worker, hooks
):
    org = f.make_org(session)
    hook, old = add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("rotating"))
    new = notification_hooks.rotate_secret(
        session, hook=hook, secret_key=settings.secret_key, actor=f.SETUP
    )
    event_id = notify(session, organisation_id=org.id, event="review.resolved", payload={})
    session.commit()

    settled(sessions, event_id, 1)

    (received,) = hooks.at("rotating")
    assert verify([old], body=received.body, headers=received.headers)
    assert verify([new], body=received.body, headers=received.headers)
    for secret in (old, new):
        Webhook(secret).verify(received.body, received.headers)
    assert len(received.headers["Webhook-Signature"].split(" ")) == 2


def test_slack_hooks_get_the_incoming_webhook_shape_and_unsubscribed_hooks_nothing(
    session, sessions, settings, worker, hooks
):
    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.SLACK, hooks.url("slack"), name="chat")
    add_hook(
        session,
        settings,
        org,
        HookKind.WEBHOOK,
        hooks.url("invites"),
        name="inv",
        events=["invitation.*"],
    )
    person = {"id": "u1", "email": "leaver@example.com", "name": "Leaver"}
    event_id = notify(
        session,
        organisation_id=org.id,
        event="finding.urgent",
        payload={
            "user": person,
            "findings": [
                {
                    "severity": "urgent",
                    "kind": "usage_after_revocation",
                    "subject_name": "key 1",
                    "action": "revoke_key",
                }
            ],
        },
    )
    session.commit()

    settled(sessions, event_id, 1)

    (message,) = hooks.at("slack")
    body = message.json
    assert "leaver@example.com" in body["text"] and body["blocks"][0]["type"] == "header"
    assert "usage_after_revocation" in body["blocks"][1]["text"]["text"]
    assert hooks.at("invites") == []


def test_a_hook_that_keeps_failing_is_disabled_and_the_admins_are_told(
    session, sessions, settings, worker, hooks, mailbox
):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    hook, _ = add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("dead"), name="dead")
    hooks.always_fail.add("dead")
    event_id = notify(session, organisation_id=org.id, event="review.opened", payload={})
    session.commit()

    (delivery,) = settled(sessions, event_id, 1)

    assert delivery.status is DeliveryStatus.FAILED
    assert len(hooks.at("dead")) == settings.hook_disable_after_failures
    with sessions() as fresh:
        stored = fresh.get(NotificationHook, hook.id)
        assert stored.enabled is False and "in a row" in stored.disabled_reason
    wait_relaying(lambda: mailbox.to(admin.email), what="the admin told of the disabled hook")
    assert "disabled" in str(mailbox.to(admin.email)[0]["Subject"])


def test_email_hooks_and_recipients_get_mail_once_each(
    session, sessions, settings, worker, mailbox
):
    org = f.make_org(session)
    owner = f.make_user(session, org, email=f"owner-{org.slug}@example.com")
    add_hook(
        session, settings, org, HookKind.EMAIL, f"secops-{org.slug}@example.com", name="secops"
    )
    event_id = notify(
        session,
        organisation_id=org.id,
        event="review.resolved",
        payload={"message": "all done"},
        recipient_user_ids=[owner.id],
    )
    session.commit()

    settled(sessions, event_id, 2)

    for address in (owner.email, f"secops-{org.slug}@example.com"):
        (mail,) = wait_until(lambda a=address: mailbox.to(a), what=address)
        assert "all done" in mail.get_content()


def test_a_delivery_is_sent_by_one_holder_of_its_lease_at_a_time(session, settings):
    from datetime import timedelta

    from models.actions import notification_deliveries as deliveries

    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    (delivery,) = deliveries.plan_deliveries(
        session,
        event_id="e-1",
        organisation_id=org.id,
        event="review.opened",
        payload={},
        recipient_user_ids=[],
    )
    again = deliveries.plan_deliveries(
        session,
        event_id="e-1",
        organisation_id=org.id,
        event="review.opened",
        payload={},
        recipient_user_ids=[],
    )
    assert again == []  # the same event plans nothing twice

    lease = timedelta(seconds=60)
    assert deliveries.claim_delivery(session, delivery_id=delivery.id, lease=lease) is not None
    assert deliveries.claim_delivery(session, delivery_id=delivery.id, lease=lease) is None
    assert 0 < deliveries.lease_remaining(session, delivery_id=delivery.id) <= 60
    outcome = deliveries.record_attempt(
        session,
        delivery=delivery,
        result=deliveries.AttemptResult(True, status_code=200),
        max_attempts=3,
        disable_after_failures=3,
    )
    assert outcome is deliveries.Outcome.DELIVERED
    assert deliveries.lease_remaining(session, delivery_id=delivery.id) is None
    assert deliveries.claim_delivery(session, delivery_id=delivery.id, lease=lease) is None


def test_without_smtp_a_recipients_notification_is_kept_in_the_local_outbox(
    session, sessions, settings, mailbox, monkeypatch
):
    from models.actions import notification_deliveries
    from models.entities import LocalMail
    from models.queries.local_mail import mail_detail
    from tests.support.fuzz import hold_tasks
    from worker.runtime import init_runtime
    from worker.tasks.notifications import deliver

    hold_tasks(monkeypatch)  # only this test delivers it, not a worker left from another
    org = f.make_org(session)
    owner = f.make_user(session, org, email=f"owner-{org.slug}@example.com")
    notification_deliveries.plan_deliveries(
        session,
        event_id="evt-local-1",
        organisation_id=org.id,
        event="review.resolved",
        payload={"message": "all done"},
        recipient_user_ids=[owner.id],
    )
    (delivery_id,) = session.scalars(select(NotificationDelivery.id)).all()
    session.commit()
    init_runtime(settings.model_copy(update={"smtp_host": ""}))
    try:
        assert deliver.run(str(delivery_id)) == "delivered"
    finally:
        init_runtime(settings)

    with sessions() as fresh:
        assert fresh.get(NotificationDelivery, delivery_id).status is DeliveryStatus.DELIVERED
        (kept,) = fresh.scalars(select(LocalMail)).all()
        detail = mail_detail(kept, secret_key=settings.secret_key)
    assert detail["to"] == owner.email and "all done" in detail["text"]
    assert mailbox.messages == []


def test_a_failure_after_thousands_of_attempts_is_recorded_and_retried_after_the_cap(
    session, sessions, settings, hooks, monkeypatch
):
    """A re-send starts a fresh budget but keeps the count: past about a thousand attempts the
    backoff's 2**n no longer converted to a float, and the task crashed instead of retrying."""
    from celery.exceptions import Retry

    from tests.support.fuzz import hold_tasks
    from worker.tasks.notifications import deliver

    hold_tasks(monkeypatch)  # only this test delivers it
    delivery = _failing_once_after(session, settings, hooks, attempts=5000)
    session.commit()

    with pytest.raises(Retry):  # retried later (called directly: no countdown to read)
        deliver.run(str(delivery.id))

    with sessions() as fresh:
        row = fresh.get_one(NotificationDelivery, delivery.id)
        assert row.status is DeliveryStatus.PENDING and row.attempts == 5001
        (attempt,) = fresh.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
        ).all()
        assert (attempt.ok, attempt.status_code) == (False, 503)
    assert [r.status for r in hooks.at("down")] == [503]


def test_a_re_sent_delivery_that_fails_again_waits_the_first_backoff_not_the_cap(
    session, settings, hooks, monkeypatch
):
    """A re-send starts a fresh budget of attempts, and so a fresh backoff: the first failure
    after it waits the base, however many attempts failed before the re-send."""
    from celery.exceptions import Retry

    from worker.celery_app import celery_app
    from worker.tasks.notifications import deliver

    held: list[dict] = []  # messages kept from the broker: only this test delivers it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    delivery = _failing_once_after(session, settings, hooks, attempts=20)  # then re-sent
    session.commit()

    deliver.push_request(
        id="resent-1", called_directly=False, retries=0, args=[str(delivery.id)], kwargs={}
    )
    try:
        with pytest.raises(Retry) as retried:
            deliver.run(str(delivery.id))
    finally:
        deliver.pop_request()

    assert retried.value.when == settings.notification_retry_base
    retries = [kw["countdown"] for kw in held if kw.get("task_id") == "resent-1"]
    assert retries == [settings.notification_retry_base]


@pytest.mark.parametrize(
    ("status", "asked", "waits"),
    [(429, "120", 120.0), (503, "120", 120.0), (429, "86400", 600.0)],
    ids=["429", "503", "a-day-capped"],
)
def test_a_hook_asking_to_wait_is_called_again_no_sooner_and_at_most_the_cap(
    session, sessions, settings, hooks, monkeypatch, status, asked, waits
):
    """A receiver shedding load (429 or 503 with Retry-After) is called again no sooner than it
    asked, and at most NOTIFICATION_RETRY_MAX later; the attempt's log names the wait. Before,
    the Retry-After was ignored: the retry came after the backoff's base (1 s here), into the
    same refusal, and each refusal counted towards disabling the hook."""
    from celery.exceptions import Retry

    from models.actions import notification_deliveries
    from worker.celery_app import celery_app
    from worker.runtime import runtime
    from worker.tasks.notifications import deliver

    waiting = {"notification_retry_base": 1.0, "notification_retry_max": 600.0}
    monkeypatch.setattr(runtime(), "settings", settings.model_copy(update=waiting))
    held: list[dict] = []  # messages kept from the broker: only this test delivers it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("busy"))
    hooks.ask_to_wait("busy", 1, status=status, retry_after=asked)
    (delivery,) = notification_deliveries.plan_deliveries(
        session,
        event_id="evt-busy",
        organisation_id=org.id,
        event="review.opened",
        payload={"review_id": None},
        recipient_user_ids=[],
    )
    session.commit()

    deliver.push_request(
        id="busy-1", called_directly=False, retries=0, args=[str(delivery.id)], kwargs={}
    )
    try:
        with pytest.raises(Retry) as retried:
            deliver.run(str(delivery.id))
    finally:
        deliver.pop_request()

    assert retried.value.when == waits
    assert [kw["countdown"] for kw in held if kw.get("task_id") == "busy-1"] == [waits]
    with sessions() as fresh:
        (attempt,) = fresh.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
        ).all()
        assert (attempt.ok, attempt.status_code) == (False, status)
        assert attempt.error == f"HTTP {status} (Retry-After {asked} s)"
        assert fresh.get_one(NotificationDelivery, delivery.id).status is DeliveryStatus.PENDING
    assert [r.status for r in hooks.at("busy")] == [status]


def test_a_second_copy_of_a_delivery_waiting_out_its_backoff_does_not_send_it_early(
    session, sessions, settings, hooks, monkeypatch
):
    """A delivery waiting out its backoff (or the receiver's Retry-After) is not sent by
    another copy of its task before it is due: the outbox relay publishes the task again once
    its message has not completed for OUTBOX_REDISPATCH_AFTER (a Celery retry chain never
    completes it until it succeeds), which also brings a delivery back whose chain the broker
    lost. That copy waits until the delivery is due. Before, it sent at once, and started a
    second retry chain: a hook down for hours was called every redispatch regardless of its
    backoff, and its failures counted towards disabling it twice as fast."""
    from celery.exceptions import Retry

    from models.actions import notification_deliveries
    from worker.celery_app import celery_app
    from worker.runtime import runtime
    from worker.tasks.notifications import deliver

    waiting = {"notification_retry_base": 300.0, "notification_retry_max": 3600.0}
    monkeypatch.setattr(runtime(), "settings", settings.model_copy(update=waiting))
    held: list[dict] = []  # messages kept from the broker: only this test delivers it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("down"))
    hooks.fail_first("down", 5)
    (delivery,) = notification_deliveries.plan_deliveries(
        session,
        event_id="evt-redispatched",
        organisation_id=org.id,
        event="review.opened",
        payload={"review_id": None},
        recipient_user_ids=[],
    )
    session.commit()

    def run_copy(task_id: str) -> Retry:
        deliver.push_request(
            id=task_id, called_directly=False, retries=0, args=[str(delivery.id)], kwargs={}
        )
        try:
            with pytest.raises(Retry) as retried:
                deliver.run(str(delivery.id))
        finally:
            deliver.pop_request()
        return retried.value

    first = run_copy("outbox-first")
    assert first.when == 300.0
    redispatched = run_copy("outbox-redispatched")  # the relay's copy, minutes later

    assert [r.status for r in hooks.at("down")] == [503]  # not called again before it is due
    assert isinstance(redispatched.when, float) and 299.0 <= redispatched.when <= 301.0
    with sessions() as fresh:
        row = fresh.get_one(NotificationDelivery, delivery.id)
        assert row.status is DeliveryStatus.PENDING and row.attempts == 1
        assert fresh.get_one(NotificationHook, row.hook_id).consecutive_failures == 1


def _failing_once_after(session, settings, hooks, *, attempts: int) -> NotificationDelivery:
    """A delivery to a webhook that fails its next request, re-sent after `attempts` tries
    (a fresh budget from there)."""
    from models.actions import notification_deliveries

    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("down"))
    hooks.fail_first("down", 1)
    (delivery,) = notification_deliveries.plan_deliveries(
        session,
        event_id=f"evt-after-{attempts}",
        organisation_id=org.id,
        event="review.opened",
        payload={"review_id": None},
        recipient_user_ids=[],
    )
    delivery.attempts = delivery.attempts_at_resend = attempts
    return delivery


def test_names_in_chat_and_email_alerts_have_their_invisible_characters_marked(
    session, sessions, settings, worker, hooks, mailbox
):
    """Slack and email are read by people: a key named with a right-to-left override or a
    zero-width space shows markers ("<U+202E>"), a name with an emoji joiner stays as it is.
    The signed webhook carries the values as data, escaped (\\u202e), never raw."""
    org = f.make_org(session)
    add_hook(session, settings, org, HookKind.SLACK, hooks.url("chat"), name="chat")
    add_hook(session, settings, org, HookKind.WEBHOOK, hooks.url("siem"), name="siem")
    secops = f"secops-{org.slug}@example.com"
    add_hook(session, settings, org, HookKind.EMAIL, secops, name="secops")
    payload = {
        "user": {
            "id": "u1",
            "email": "leaver@example.com",
            "name": "Dev \U0001f469\u200d\U0001f4bb",
        },
        "findings": [
            {
                "severity": "urgent",
                "kind": "usage_after_revocation",
                "subject_name": "prod\u202eyek-tset",
                "action": "revoke_key",
            },
            {"severity": "high", "kind": "api_key", "subject_name": "ci\u200b", "action": "x"},
        ],
    }
    event_id = notify(session, organisation_id=org.id, event="finding.urgent", payload=payload)
    session.commit()

    settled(sessions, event_id, 3)

    (chat,) = hooks.at("chat")
    text = chat.json["blocks"][1]["text"]["text"]
    assert "prod&lt;U+202E&gt;yek-tset" in text and "ci&lt;U+200B&gt;" in text
    (mail,) = wait_until(lambda: mailbox.to(secops), what=secops)
    content = mail.get_content()
    assert "prod<U+202E>yek-tset" in content and "ci<U+200B>" in content
    for shown in (chat.body.decode(), content, str(mail["Subject"])):
        assert "\u202e" not in shown and "\u200b" not in shown
    (siem,) = hooks.at("siem")
    assert b"\\u202e" in siem.body and siem.json["data"]["findings"] == payload["findings"]
    assert siem.json["data"]["user"]["name"] == "Dev \U0001f469\u200d\U0001f4bb"
