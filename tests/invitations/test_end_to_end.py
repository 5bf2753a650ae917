"""End to end: API -> worker -> real SMTP -> the link in headless chromium -> an ACTIVE user.

Real HTTP server, real Celery worker, real SMTP server, real browser; PostgreSQL in CI.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from models.base import utcnow
from models.entities import Invitation, TeamMembership, User
from models.enums import InvitationStatus, Role, TeamRole, UserStatus
from tests.invitations.conftest import IDENTITY_HEADER
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from worker.celery_app import celery_app

pytestmark = pytest.mark.slow

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/enroll/inv_[A-Za-z0-9_-]{43})")


def _link_in(mailbox, email: str, count: int) -> str:
    messages = wait_relaying(
        lambda: len(mailbox.to(email)) >= count and mailbox.to(email),
        timeout=90,
        what=f"email #{count}",
    )
    text = messages[count - 1].get_body(preferencelist=("plain",)).get_content()
    return LINK.search(text).group(1)


def _browser_page(chromium, email: str):
    context = chromium.new_context(extra_http_headers={IDENTITY_HEADER: email})
    return context, context.new_page()


def test_invite_email_browser_accept_resend_revoke_expire(
    session, sessions, scene, worker, mailbox, live_server, chromium
):
    scene.org.settings.resend_cooldown_seconds = 0
    token = f.admin_token(session, scene.org, scene.admin)
    session.commit()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    # Invite through the admin API on the live server; the worker emails the link.
    created = api.post(
        f"{live_server}/api/v1/invitations",
        json={
            "email": "eve@example.com",
            "role": "MANAGER",
            "teams": [{"team_id": str(scene.team.id), "role": "MEMBER"}],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    link = _link_in(mailbox, "eve@example.com", 1)
    assert link.startswith(live_server)

    # The invitee opens it in a real browser, signed in as the invited email, and accepts.
    context, page = _browser_page(chromium, "eve@example.com")
    page.goto(link)
    assert page.locator("#invited-email").inner_text() == "eve@example.com"
    assert page.locator("#organisation").inner_text() == "Acme Labs"
    assert page.locator("#role").inner_text() == "Manager"
    assert page.locator("#status").inner_text() == "pending"
    page.fill("#name", "Eve Example")
    page.click("#accept")
    assert page.locator("#outcome").inner_text() == "Welcome to Acme Labs"
    page.goto(link)
    assert page.locator("#problem").get_attribute("data-kind") == "used"
    context.close()

    with sessions() as s:
        user = s.scalar(select(User).where(User.email_key == "eve@example.com"))
        assert (user.status, user.role, user.name) == (
            UserStatus.ACTIVE,
            Role.MANAGER,
            "Eve Example",
        )
        membership = s.get(TeamMembership, (scene.team.id, user.id))
        assert membership is not None and membership.role is TeamRole.MEMBER

    # Resend kills the old link at once; the new one works.
    second = api.post(
        f"{live_server}/api/v1/invitations", json={"email": "sam@example.com"}, timeout=10
    ).json()
    old_link = _link_in(mailbox, "sam@example.com", 1)
    resent = api.post(f"{live_server}/api/v1/invitations/{second['id']}/resend", timeout=10)
    assert resent.status_code == 200, resent.text
    new_link = _link_in(mailbox, "sam@example.com", 2)
    assert new_link != old_link
    context, page = _browser_page(chromium, "sam@example.com")
    page.goto(old_link)
    assert page.locator("#problem").get_attribute("data-kind") == "unknown"
    page.goto(new_link)
    assert page.locator("#state-ready").is_visible()

    # Revoke kills the link.
    revoked = api.post(f"{live_server}/api/v1/invitations/{second['id']}/revoke", timeout=10)
    assert revoked.json()["status"] == "revoked"
    page.goto(new_link)
    assert page.locator("#problem").get_attribute("data-kind") == "revoked"
    assert "What to do next" in page.content()
    context.close()

    # The expiry task on the worker expires overdue ones; their link says so.
    third = api.post(
        f"{live_server}/api/v1/invitations", json={"email": "olu@example.com"}, timeout=10
    ).json()
    late_link = _link_in(mailbox, "olu@example.com", 1)
    with sessions() as s:
        s.get(Invitation, uuid.UUID(third["id"])).expires_at = utcnow() - timedelta(minutes=1)
        s.commit()
    celery_app.send_task("invitations.expire_overdue")

    def expired() -> bool:
        with sessions() as s:
            return s.get(Invitation, uuid.UUID(third["id"])).status is InvitationStatus.EXPIRED

    wait_until(expired, timeout=90, what="the expiry task")
    listed = api.get(f"{live_server}/api/v1/invitations?status=expired", timeout=10).json()
    assert [i["id"] for i in listed["items"]] == [third["id"]]
    context, page = _browser_page(chromium, "olu@example.com")
    page.goto(late_link)
    assert page.locator("#problem").get_attribute("data-kind") == "expired"
    context.close()
