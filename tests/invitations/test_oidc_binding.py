"""Accepting an invitation after signing in with the organisation's OpenID Connect provider
binds the provider account (iss and sub) to the person, through the same function a first
console sign-in binds with (models/actions/provider_accounts.py): another account of the
provider showing the same verified email is not them, at the console or anywhere else.

The end-to-end test drives headless Chromium against the real provider on loopback
(tests/support/oidc.py), whose accounts "ivy@…" and "Ivy@…" are two subjects with one
verified email."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.actions import console_sessions, oidc_providers, provider_accounts
from models.actions import invitations as inv
from models.actions.provider_accounts import ProviderAccount
from models.actions.sign_in_audit import SignInRefused
from models.entities import Invitation, OidcSubject, User
from models.enums import InvitationStatus, Role, SignInPlace, Source, UserStatus
from tests.invitations.test_enroll_pages import form_key
from tests.invitations.test_oidc_callback_refusals import (
    answers_with,
    configure,
    id_token,
    issuer,  # noqa: F401 - the fixture
    started,
)
from tests.support import factories as f
from tests.support.oidc import (
    LoopbackProvider,
    audit_events,
    sign_in_at_provider,
    sign_in_through_the_invitation,
    start_provider,
)

ISSUER = "https://idp.example.com"


def test_accepting_binds_the_account_the_console_then_holds_to(session, sessions, scene):
    issued = scene.invite(session, email="ivy@example.com", role=Role.MANAGER)
    enrolled = ProviderAccount(ISSUER, "00u-ivy")
    accepted = inv.accept_invitation(
        session, token=issued.token, email="ivy@example.com", name="Ivy", account=enrolled
    )
    session.commit()

    def console_sign_in(account: ProviderAccount) -> console_sessions.ConsoleSession:
        return console_sessions.sign_in_verified_email(
            session,
            organisation_id=scene.org.id,
            email="ivy@example.com",
            lifetime=timedelta(hours=1),
            account=account,
        )

    with pytest.raises(SignInRefused) as refused:
        console_sign_in(ProviderAccount(ISSUER, "00u-impostor"))
    assert refused.value.outcome == "other_account"
    session.rollback()
    assert console_sign_in(enrolled).viewer.user_id == accepted.user.id
    session.commit()
    with sessions() as s:
        (bound,) = audit_events(s, "sign_in.oidc_account_bound")
        assert (bound.target_id, bound.after) == (
            str(accepted.user.id),
            {"issuer": ISSUER, "subject": "00u-ivy"},
        )
        assert (bound.source, bound.actor_user_id) == (Source.INVITATION, accepted.user.id)


def test_accepting_through_the_proxy_binds_nothing(session, sessions, scene):
    issued = scene.invite(session, email="ivy@example.com")
    inv.accept_invitation(session, token=issued.token, email="ivy@example.com", name="Ivy")
    session.commit()
    with sessions() as s:
        assert s.scalars(select(OidcSubject)).all() == []


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory) -> Iterator[LoopbackProvider]:
    """The real provider, with both callbacks: the enrollment pages' and the console's."""
    log = tmp_path_factory.mktemp("oidc-binding") / "provider.log"
    started = start_provider(
        redirect_uris=[
            oidc_providers.callback_url(live_server, SignInPlace.ENROLLMENT),
            oidc_providers.callback_url(live_server, SignInPlace.CONSOLE),
        ],
        log_path=log,
    )
    yield started
    started.stop()


def console_sign_in(chromium, base: str, slug: str, login: str) -> str:
    """Sign in to the console at the provider as `login`: who the console says is signed in,
    or "refused" with the page's text."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{base}/console/sign-in?organisation={slug}")
    page.click("#sign-in-oidc")
    sign_in_at_provider(page, login)
    page.wait_for_selector("#signed-in-as, #sign-in-refused")
    if page.locator("#sign-in-refused").count():
        said = "refused: " + page.locator("#sign-in-refused").inner_text()
    else:
        said = page.locator("#signed-in-as").inner_text()
    context.close()
    return said


@pytest.mark.slow
def test_the_account_an_invitee_enrolled_with_is_the_one_the_console_lets_in(
    session, sessions, scene, settings, live_server, chromium, provider
):
    oidc_providers.configure(
        session,
        organisation=scene.org,
        secret_key=settings.secret_key,
        actor=scene.actor(scene.admin_viewer),
        policy=settings.outbound_policy(),
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        shared_callback=True,  # the provider registered the shared callbacks
    )
    issued = scene.invite(session, email="ivy@example.com", role=Role.MANAGER)
    session.commit()
    context = chromium.new_context()
    page = context.new_page()
    sign_in_through_the_invitation(
        page, f"{live_server}/enroll/{issued.token}", "ivy@example.com", name="Ivy"
    )
    page.wait_for_selector("#outcome")
    context.close()
    with sessions() as s:
        ivy = s.scalars(select(User).where(User.email == "ivy@example.com")).one()
        assert ivy.status is UserStatus.ACTIVE

    # Another account of the provider with the same verified email: not Ivy.
    said = console_sign_in(chromium, live_server, scene.org.slug, "Ivy@example.com")
    assert said.startswith("refused: ") and "another account of this provider" in said
    signed_in = console_sign_in(chromium, live_server, scene.org.slug, "ivy@example.com")
    assert signed_in == "ivy@example.com"
    with sessions() as s:
        bound = audit_events(s, "sign_in.oidc_account_bound")
        assert [(e.source, e.after["subject"]) for e in bound] == [
            (Source.INVITATION, "ivy@example.com")
        ]
        refused = audit_events(s, "console.sign_in_refused")
        assert [(e.after["outcome"], e.actor_user_id) for e in refused] == [
            ("other_account", ivy.id)
        ]


def test_a_sign_in_counts_only_while_the_provider_that_made_it_is_the_organisations(
    client,
    session,
    sessions,
    scene,
    settings,
    issuer,  # noqa: F811 - the fixture imported above
    httpserver,
):
    """The identity cookie carries the account that signed in and its issuer's hash: once the
    organisation's provider is another issuer, that sign-in is nobody's, and nothing is bound
    under the new issuer's name."""
    token, state, nonce = started(client, session, scene)
    answers_with(
        httpserver,
        {
            "id_token": id_token(
                issuer, nonce, sub="00u-eve", email="eve@example.com", email_verified=True
            ),
            "access_token": "at",
            "token_type": "Bearer",
        },
    )
    back = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": issuer}
    )
    assert back.status_code == 303, back.text
    assert 'id="state-ready"' in client.get(f"/enroll/{token}").text

    configure(session, scene, settings, httpserver.url_for("/another-idp"))
    session.commit()
    page = client.get(f"/enroll/{token}")
    assert 'id="state-sign-in"' in page.text
    refused = client.post(f"/enroll/{token}", data={"name": "Eve", "form_key": "0" * 64})
    assert refused.status_code == 401
    with sessions() as s:
        assert s.scalars(select(OidcSubject)).all() == []


def test_accepting_with_another_account_than_the_one_bound_keeps_only_the_refusal(
    client,
    session,
    sessions,
    scene,
    issuer,  # noqa: F811 - the fixture imported above
    httpserver,
):
    """Eve is PENDING and already bound to one account of the provider; accepting her
    invitation signed in with another account of it (the same verified email) is refused on
    the page, the refusal is audited, and nothing of the acceptance is kept: no claim of the
    invitation, no change to Eve, no binding."""
    eve = f.make_user(
        session, scene.org, email="eve@example.com", name="Eve", status=UserStatus.PENDING
    )
    provider_accounts.check(
        session,
        user=eve,
        account=ProviderAccount(issuer, "00u-eve"),
        actor=scene.actor(scene.admin_viewer),
    )
    token, state, nonce = started(client, session, scene)
    answers_with(
        httpserver,
        {
            "id_token": id_token(
                issuer, nonce, sub="00u-eve-2", email="eve@example.com", email_verified=True
            ),
            "access_token": "at",
            "token_type": "Bearer",
        },
    )
    back = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": issuer}
    )
    assert back.status_code == 303, back.text
    page = client.get(f"/enroll/{token}").text

    answer = client.post(
        f"/enroll/{token}", data={"name": "Eve Renamed", "form_key": form_key(page)}
    )

    assert answer.status_code == 403
    assert 'data-kind="sign_in_refused"' in answer.text
    with sessions() as s:
        invitation = s.scalars(select(Invitation)).one()
        assert invitation.status is InvitationStatus.PENDING
        stored = s.get_one(User, eve.id)
        assert (stored.status, stored.name) == (UserStatus.PENDING, "Eve")
        assert [(b.user_id, b.subject) for b in s.scalars(select(OidcSubject))] == [
            (eve.id, "00u-eve")
        ]
        assert audit_events(s, "invitation.accepted") == []
        assert audit_events(s, "user.updated") == []
        (refused,) = audit_events(s, "enrollment.sign_in_refused")
        assert (refused.target_type, refused.target_id) == ("invitation", str(invitation.id))
        assert (refused.actor_user_id, refused.after["outcome"]) == (eve.id, "other_account")
