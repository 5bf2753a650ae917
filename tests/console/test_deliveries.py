"""The console's Deliveries page: notifications with Re-send (CSRF, admins only, audited as the
signed-in person), audit log streams with their cursor, lag and last error; in headless
Chromium too, where a re-send reaches a real receiver through the run's worker (screenshots
deliveries-streams.png and deliveries-resent.png, axe-core)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.audit_stream_delivery import batch_refused
from models.base import utcnow
from models.entities import AuditEvent, AuditStream, NotificationDelivery
from models.enums import DeliveryStatus, HookKind
from tests.console.conftest import Org, csrf_of, sign_in
from tests.reviews.test_deliveries import add_hook
from tests.reviews.test_resend import failed_delivery
from tests.support import factories as f
from tests.support.browser import accessibility_violations, screenshot_dir, serving
from tests.support.relay import wait_relaying


def _streams(session, settings, org: Org) -> tuple[AuditStream, AuditStream]:
    """A SIEM that refuses (its next try an hour away, so no worker tries it meanwhile) and a
    paused one."""
    made = [
        f.make_stream(
            session,
            org.org.id,
            f"http://127.0.0.1:9/{name}",
            secret_key=settings.secret_key,
            name=name,
        )[0]
        for name in ("siem-eu", "siem-us")
    ]
    refusing, healthy = made
    refusing.enabled = healthy.enabled = False
    now = utcnow()
    for _ in range(3):
        batch_refused(
            session,
            stream=refusing,
            error="HTTP 503 from the SIEM",
            now=now - timedelta(minutes=5),
            retry_base=1,
            retry_max=60,
        )
    refusing.enabled = True
    refusing.next_attempt_at = now + timedelta(hours=1)  # no worker tries it during the test
    session.commit()
    return refusing, healthy


def test_the_page_shows_streams_and_resends_a_notification(
    client, org, session, sessions, settings
) -> None:
    hook, _ = add_hook(session, settings, org.org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org.org, hook.id)
    _streams(session, settings, org)
    sign_in(client, org.admin_token)
    page = client.get("/console/deliveries").get_data(as_text=True)
    assert "siem-eu" in page and "HTTP 503 from the SIEM" in page and "failing" in page
    assert "siem-us" in page and "paused" in page
    assert f"/console/notification-deliveries/{delivery.id}/resend" in page

    answer = client.post(
        f"/console/notification-deliveries/{delivery.id}/resend", data={"csrf": csrf_of(page)}
    )
    assert answer.status_code == 303 and "done=re-sent" in answer.headers["Location"]
    with sessions() as fresh:
        assert fresh.get_one(NotificationDelivery, delivery.id).resends == 1
        event = fresh.scalar(
            select(AuditEvent).where(AuditEvent.action == "notification_delivery.resent")
        )
        assert event.actor == "ada@acme.example"


def test_a_resend_without_the_form_token_or_by_a_manager_changes_nothing(
    client, org, session, sessions, settings
) -> None:
    hook, _ = add_hook(session, settings, org.org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org.org, hook.id)
    path = f"/console/notification-deliveries/{delivery.id}/resend"
    sign_in(client, org.admin_token)
    assert client.post(path, data={"csrf": "forged"}).status_code == 403
    missing = client.post(
        f"/console/notification-deliveries/{uuid.uuid4()}/resend",
        data={"csrf": csrf_of(client.get("/console/deliveries").get_data(as_text=True))},
    )
    assert missing.status_code == 404 and "not found" in missing.get_data(as_text=True)
    sign_in(client, org.manager_token)
    page = client.get("/console").get_data(as_text=True)
    assert client.post(path, data={"csrf": csrf_of(page)}).status_code == 403
    with sessions() as fresh:
        found = fresh.get_one(NotificationDelivery, delivery.id)
        assert (found.status, found.resends) == (DeliveryStatus.FAILED, 0)


@pytest.mark.slow
def test_resend_in_the_browser_reaches_the_receiver(
    app, org, session, sessions, settings, worker, hooks, chromium
) -> None:
    hook, _ = add_hook(session, settings, org.org, HookKind.WEBHOOK, hooks.url("mended"))
    delivery = failed_delivery(session, org.org, hook.id)
    _streams(session, settings, org)
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.goto(f"{base}/console/sign-in")
        page.fill("#token", org.admin_token)
        with page.expect_navigation():
            page.click("#sign-in")
        page.goto(f"{base}/console/deliveries")
        assert "HTTP 503 from the SIEM" in page.locator("#streams").inner_text()
        _look(page, "deliveries-streams")
        with page.expect_navigation():
            page.click(f"form[action$='{delivery.id}/resend'] button")
        assert "sent again" in page.locator("#notice").inner_text()
        _look(page, "deliveries-resent")
        context.close()

    wait_relaying(lambda: hooks.at("mended"), what="the re-send to arrive")
    (received,) = hooks.at("mended")
    assert received.headers["Webhook-Id"] == str(delivery.id) and received.status == 200


def _look(page, name: str) -> None:
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)
    assert accessibility_violations(page) == [], name
