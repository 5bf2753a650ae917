"""Signing in to the console with the organisation's OpenID Connect provider, in headless
Chromium against a real provider on loopback (the certified `oidc-provider` from npm,
tests/support/oidc.py): the admin sees the overview; a member, an unknown email and an
unverified one are refused with a page and nothing is created; a tampered or replayed state
is refused; every outcome is in the audit trail, without secrets.

Screenshots (build/console-screenshots/, or $CONSOLE_SCREENSHOT_DIR): sign-in-oidc.png,
overview-oidc.png, sign-in-refused.png, sign-in-unknown-organisation.png,
sign-in-state-refused.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from models.actions import oidc_providers
from models.entities import ApiToken, AuditEvent
from models.enums import Role, SignInPlace, TokenScope
from tests.console.conftest import Org
from tests.support import factories as f
from tests.support.browser import accessibility_violations, screenshot_dir
from tests.support.oidc import (
    LoopbackProvider,
    audit_events,
    send_to_the_provider_with_a_tampered_state,
    sign_in_at_provider,
    start_provider,
)

pytestmark = pytest.mark.slow
OIDC_SIGN_IN = re.compile(r"/console/oidc/sign-in\?")


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory) -> Iterator[LoopbackProvider]:
    log = tmp_path_factory.mktemp("oidc-console") / "provider.log"
    started = start_provider(
        redirect_uris=[oidc_providers.callback_url(live_server, SignInPlace.CONSOLE)],
        log_path=log,
    )
    yield started
    started.stop()


@pytest.fixture
def acme(org: Org, session, settings, provider) -> Org:
    """The console's organisation, signing in with the loopback provider."""
    oidc_providers.configure(
        session,
        organisation=org.org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=settings.outbound_policy(),
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        display_name="Acme SSO",
        shared_callback=True,  # the provider registered the shared callback
    )
    session.commit()
    return org


def _look(page, name: str) -> None:
    """A screenshot for people, and no serious or critical accessibility violation."""
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)
    assert accessibility_violations(page) == [], name


def _sign_in(page, base: str, slug: str, email: str) -> None:
    page.goto(f"{base}/console")
    page.fill("#organisation", slug)
    page.click("#choose-organisation")
    page.click("#sign-in-oidc")
    sign_in_at_provider(page, email)


def test_an_admin_signs_in_with_oidc_and_sees_the_overview(
    acme,
    live_server,
    chromium,
    sessions,
    provider,
):
    context = chromium.new_context()
    page = context.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: "/console/oidc/callback" in r.url and callbacks.append(r.url))
    page.goto(f"{live_server}/console")
    assert page.url.endswith("/console/sign-in")
    page.fill("#organisation", acme.org.slug)
    with page.expect_navigation():
        page.click("#choose-organisation")
    assert page.locator("#sign-in-oidc").inner_text() == "Sign in with Acme SSO"
    _look(page, "sign-in-oidc")
    page.click("#sign-in-oidc")
    sign_in_at_provider(page, "ada@acme.example")
    page.wait_for_selector("#signed-in-as")
    assert page.url == f"{live_server}/console"
    assert page.locator("#signed-in-as").inner_text() == "ada@acme.example"
    _look(page, "overview-oidc")

    # The callback cannot be used twice, even by the browser that used it.
    replay = page.request.get(callbacks[0])
    assert replay.status == 403 and "already used" in replay.text()
    assert page.request.get(f"{live_server}/console").status == 200  # still signed in
    context.close()

    with sessions() as s:
        started = s.scalars(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE)).all()
        assert [(t.user_id, t.name) for t in started] == [(acme.admin.id, "console session (oidc)")]
        hours = (started[0].expires_at - started[0].created_at).total_seconds() / 3600
        assert round(hours) == 8  # the lifetime of a token exchange's session
        events = audit_events(s, "console.")
        assert [(e.action, e.actor, e.after.get("outcome")) for e in events] == [
            ("console.signed_in", "ada@acme.example", None),
            ("console.sign_in_refused", "anonymous", "state_used"),
        ]
        assert events[0].after == {
            "place": "console",
            "method": "oidc",
            "email": "ada@acme.example",
        }
        assert {e.organisation_id for e in events} == {acme.org.id}
        assert_no_secrets(events, callbacks[0], provider.client_secret)


def test_a_member_an_unknown_and_an_unverified_email_are_refused(
    acme,
    live_server,
    chromium,
    sessions,
    provider,
):
    for email, says in [
        ("mia@acme.example", "for Organisation Admins and managers"),
        ("nobody@acme.example", "is not a person of this organisation"),
        ("unverified.ada@acme.example", "has not verified the email"),
    ]:
        context = chromium.new_context()
        page = context.new_page()
        _sign_in(page, live_server, acme.org.slug, email)
        page.wait_for_selector("#sign-in-refused")
        assert says in page.locator("#sign-in-refused").inner_text()
        assert page.locator("#signed-in-as").count() == 0
        if email.startswith("mia"):
            _look(page, "sign-in-refused")
        assert page.request.get(f"{live_server}/console", max_redirects=0).status == 303
        context.close()

    with sessions() as s:
        assert s.scalar(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE)) is None
        events = audit_events(s, "console.")
        assert [(e.actor, e.after["outcome"], e.actor_user_id) for e in events] == [
            ("mia@acme.example", "not_console_role", acme.member.id),
            ("nobody@acme.example", "not_a_person", None),
            ("unverified.ada@acme.example", "unverified_email", None),
        ]
        assert {(e.action, e.organisation_id) for e in events} == {
            ("console.sign_in_refused", acme.org.id)
        }
        assert_no_secrets(events, "", provider.client_secret)


def test_an_entra_style_token_without_email_verified_but_xms_edov_signs_in(
    acme,
    session,
    live_server,
    chromium,
):
    f.make_user(session, acme.org, role=Role.MANAGER, email="entra.eli@acme.example")
    session.commit()
    context = chromium.new_context()
    page = context.new_page()
    _sign_in(page, live_server, acme.org.slug, "entra.eli@acme.example")
    page.wait_for_selector("#signed-in-as")
    assert page.locator("#signed-in-as").inner_text() == "entra.eli@acme.example"
    context.close()


def test_a_tampered_state_or_an_unknown_organisation_is_refused(
    acme,
    live_server,
    chromium,
    sessions,
):
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{live_server}/console/oidc/sign-in?organisation=no-such-org")
    assert "has no OpenID Connect sign-in" in page.locator("#sign-in-error").inner_text()
    assert page.locator("#organisation").input_value() == "no-such-org"
    _look(page, "sign-in-unknown-organisation")

    page.route(OIDC_SIGN_IN, send_to_the_provider_with_a_tampered_state)
    _sign_in(page, live_server, acme.org.slug, "ada@acme.example")
    page.wait_for_selector("#sign-in-refused")
    assert "state is unknown" in page.locator("#sign-in-refused").inner_text()
    _look(page, "sign-in-state-refused")
    page.goto(f"{live_server}/console/oidc/callback?code=x")  # no state at all
    assert "state is unknown" in page.locator("#sign-in-refused").inner_text()
    assert page.request.get(f"{live_server}/console", max_redirects=0).status == 303
    context.close()

    with sessions() as s:
        assert s.scalar(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE)) is None
        events = audit_events(s, "console.")
        assert [(e.after["outcome"], e.organisation_id) for e in events] == [
            ("state_unknown", None),  # nobody started it: it belongs to no organisation
            ("state_unknown", None),
        ]


def assert_no_secrets(events: list[AuditEvent], callback: str, client_secret: str) -> None:
    """Neither the code, the state nor the client secret reach the audit trail."""
    query = dict(parse_qsl(urlsplit(callback).query))
    secrets = [client_secret, query.get("code"), query.get("state")]
    for event in events:
        text = f"{event.actor} {event.before} {event.after} {event.target_id}"
        assert not [secret for secret in secrets if secret and secret in text]


def test_a_second_provider_account_with_the_admins_email_is_refused(
    acme, live_server, chromium, sessions
):
    """The provider's accounts "ada@…" and "Ada@…" are two subjects with one verified email
    (the same person's email, compared A-Z in any case): the first to sign in is the admin's,
    the second is refused with a page."""
    for login, signed_in in [("ada@acme.example", True), ("Ada@acme.example", False)]:
        context = chromium.new_context()
        page = context.new_page()
        _sign_in(page, live_server, acme.org.slug, login)
        if signed_in:
            page.wait_for_selector("#signed-in-as")
        else:
            page.wait_for_selector("#sign-in-refused")
            assert "another account of this provider" in page.content()
        context.close()
    with sessions() as s:
        bound = audit_events(s, "sign_in.oidc_account_bound")
        assert [e.after["subject"] for e in bound] == ["ada@acme.example"]
        refused = audit_events(s, "console.sign_in_refused")
        assert [(e.after["outcome"], e.actor_user_id) for e in refused] == [
            ("other_account", acme.admin.id)
        ]
