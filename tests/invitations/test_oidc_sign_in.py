"""Sign-in with OpenID Connect on the enrollment pages, in headless Chromium, against a real
provider on loopback (the certified `oidc-provider` from npm, tests/support/oidc.py).

Screenshots of each enrollment state (sign-in offered, wrong account, state refused, signed in
and ready, active) are saved by the run under $ENROLLMENT_SCREENSHOTS_DIR if set, else under
this test's pytest tmp dir (`<basetemp>/test_invitee_signs_in_with_oidc0/screenshots/`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from models.actions import oidc_providers
from models.entities import AuditEvent, Invitation, OidcSignIn, User
from models.enums import InvitationStatus, UserStatus
from tests.support import factories as f
from tests.support.oidc import (
    LoopbackProvider,
    audit_events,
    send_to_the_provider_with_a_tampered_state,
    sign_in_at_provider,
    sign_in_through_the_invitation,
    start_provider,
)

pytestmark = pytest.mark.slow
SIGN_IN = re.compile(r"/enroll/inv_[^/]+/sign-in$")


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory) -> LoopbackProvider:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    started = start_provider(redirect_uris=[oidc_providers.callback_url(live_server)], log_path=log)
    yield started
    started.stop()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("ENROLLMENT_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def admin_api(session, scene, live_server) -> requests.Session:
    token = f.admin_token(session, scene.org, scene.admin)
    session.commit()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    return api


def configure(api: requests.Session, live_server: str, provider: LoopbackProvider) -> None:
    answer = api.put(
        f"{live_server}/api/v1/sign-in/oidc",
        json={
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "display_name": "Test IdP",
            "shared_callback": True,  # the provider registered the shared callback
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_invitee_signs_in_with_oidc(
    session, sessions, scene, live_server, chromium, provider, admin_api, screenshots
):
    configure(admin_api, live_server, provider)
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    link = f"{live_server}/enroll/{issued.token}"

    # Signed in at the provider as someone else: the wrong-account state, nothing changes.
    context = chromium.new_context()
    page = context.new_page()
    page.goto(link)
    assert page.locator("#state-sign-in").is_visible()
    assert page.locator("#sign-in").inner_text() == "Sign in with Test IdP"
    page.screenshot(path=screenshots / "1-sign-in-offered.png")
    page.click("#sign-in")
    sign_in_at_provider(page, "mallory@example.com")
    page.wait_for_selector("#state-wrong-account")
    assert page.url == link
    assert "mallory@example.com" in page.locator("#state-wrong-account").inner_text()
    assert page.locator("#accept").count() == 0
    page.screenshot(path=screenshots / "2-wrong-account.png")
    refused = page.request.post(link, form={"name": "Mallory", "form_key": "0" * 64})
    assert refused.status == 403  # the posted form meets the same check
    context.close()
    assert_nothing_accepted(sessions, issued.invitation.id)

    # A tampered state, then a missing one: refused with a clear page, nothing changes.
    context = chromium.new_context()
    page = context.new_page()
    page.route(SIGN_IN, send_to_the_provider_with_a_tampered_state)
    page.goto(link)
    page.click("#sign-in")
    sign_in_at_provider(page, "eve@example.com")
    page.wait_for_selector("#problem")
    assert page.locator("#problem").get_attribute("data-kind") == "sign_in_refused"
    assert "state is unknown" in page.content()
    page.screenshot(path=screenshots / "3-state-refused.png")
    page.goto(f"{live_server}/enroll/oidc/callback?code=x")
    assert page.locator("#problem").get_attribute("data-kind") == "sign_in_refused"
    page.goto(link)
    assert page.locator("#state-sign-in").is_visible()  # still nobody signed in
    context.close()
    assert_nothing_accepted(sessions, issued.invitation.id)

    # The invitee: signed in, the name form, ACTIVE. The callback cannot be replayed.
    context = chromium.new_context()
    page = context.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: "/enroll/oidc/callback" in r.url and callbacks.append(r.url))
    page.goto(link)
    page.click("#sign-in")
    sign_in_at_provider(page, "eve@example.com")
    page.wait_for_selector("#state-ready")
    assert "eve@example.com" in page.locator("#state-ready").inner_text()
    page.screenshot(path=screenshots / "4-signed-in-ready.png")
    replay = page.request.get(callbacks[0])
    assert replay.status == 403 and "already used" in replay.text()
    page.fill("#name", "Eve Example")
    page.click("#accept")
    assert page.locator("#outcome").inner_text() == "Welcome to Acme Labs"
    assert page.locator("#user-status").inner_text() == "ACTIVE"
    page.screenshot(path=screenshots / "5-active.png")
    context.close()

    with sessions() as s:
        user = s.scalar(select(User).where(User.email_key == "eve@example.com"))
        assert (user.status, user.name) == (UserStatus.ACTIVE, "Eve Example")
        assert s.get(Invitation, issued.invitation.id).status is InvitationStatus.ACCEPTED
        # Each sign-in's outcome, with who and where, and nothing a replay could use.
        events = audit_events(s, "enrollment.")
        assert [(e.action, e.actor, e.after.get("outcome")) for e in events] == [
            ("enrollment.sign_in_refused", "mallory@example.com", "wrong_account"),
            ("enrollment.sign_in_refused", "anonymous", "state_unknown"),  # tampered
            ("enrollment.sign_in_refused", "anonymous", "state_unknown"),  # none at all
            ("enrollment.signed_in", "eve@example.com", None),
            ("enrollment.sign_in_refused", "anonymous", "state_used"),  # the replay
        ]
        org_id, invitation_id = issued.invitation.organisation_id, str(issued.invitation.id)
        assert [(e.organisation_id, e.target_id) for e in events] == [
            (org_id, invitation_id),
            (None, "anonymous"),
            (None, "anonymous"),
            (org_id, invitation_id),
            (org_id, str(org_id)),
        ]
        replayed = dict(parse_qsl(urlsplit(callbacks[0]).query))
        for event in events:
            text = f"{event.actor} {event.after} {event.target_id}"
            assert replayed["code"] not in text and replayed["state"] not in text
            assert provider.client_secret not in text and issued.token not in text
    assert sorted(p.name for p in screenshots.iterdir()) == [
        "1-sign-in-offered.png",
        "2-wrong-account.png",
        "3-state-refused.png",
        "4-signed-in-ready.png",
        "5-active.png",
    ]


def test_an_unverified_email_is_refused(
    session, sessions, scene, live_server, chromium, provider, admin_api
):
    configure(admin_api, live_server, provider)
    issued = scene.invite(session, email="unverified.uma@example.com")
    session.commit()
    context = chromium.new_context()
    page = context.new_page()
    sign_in_through_the_invitation(
        page, f"{live_server}/enroll/{issued.token}", "unverified.uma@example.com"
    )
    page.wait_for_selector("#problem")
    assert page.locator("#problem").get_attribute("data-kind") == "sign_in_refused"
    assert "has not verified the email" in page.content()
    context.close()
    assert_nothing_accepted(sessions, issued.invitation.id)
    with sessions() as s:
        assert [
            (e.actor, e.after["outcome"], e.target_id) for e in audit_events(s, "enrollment.")
        ] == [("unverified.uma@example.com", "unverified_email", str(issued.invitation.id))]


def test_the_sign_in_link_is_offered_only_with_a_provider(session, scene, live_server, chromium):
    issued = scene.invite(session, email="olu@example.com")
    session.commit()
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{live_server}/enroll/{issued.token}")
    assert page.locator("#state-sign-in").is_visible()
    assert page.locator("#sign-in").count() == 0
    page.goto(f"{live_server}/enroll/{issued.token}/sign-in")
    assert page.locator("#problem").get_attribute("data-kind") == "unavailable"
    context.close()


def assert_nothing_accepted(sessions, invitation_id) -> None:
    with sessions() as s:
        assert s.get(Invitation, invitation_id).status is InvitationStatus.PENDING
        assert (
            s.scalar(
                select(func.count())
                .select_from(User)
                .where(User.email_key == s.get(Invitation, invitation_id).email_key)
            )
            == 0
        )
        actions = s.scalars(select(AuditEvent.action)).all()
        assert not [a for a in actions if a.startswith("invitation.accept")]
        assert s.scalar(select(func.count()).select_from(OidcSignIn)) >= 1


@pytest.fixture(scope="module")
def userinfo_only_provider(live_server, tmp_path_factory) -> LoopbackProvider:
    log = tmp_path_factory.mktemp("oidc-userinfo") / "provider.log"
    callback = oidc_providers.callback_url(live_server)
    started = start_provider(redirect_uris=[callback], log_path=log, userinfo_only=True)
    yield started
    started.stop()


def test_a_provider_that_keeps_the_email_out_of_the_id_token(
    session, sessions, scene, live_server, chromium, userinfo_only_provider, admin_api
):
    """The email is then read from the userinfo endpoint (same subject as the ID token)."""
    configure(admin_api, live_server, userinfo_only_provider)
    issued = scene.invite(session, email="ines@example.com")
    session.commit()
    context = chromium.new_context()
    page = context.new_page()
    link = f"{live_server}/enroll/{issued.token}"
    sign_in_through_the_invitation(page, link, "ines@example.com", name="Ines Example")
    assert page.locator("#user-status").inner_text() == "ACTIVE"
    context.close()
