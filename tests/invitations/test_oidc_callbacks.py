"""Which callback an enrollment sign-in's answer is taken at: the provider's own
(/enroll/oidc/callback/<callback id>) when its sign-in asked for it, the shared one only for
a provider still registered there, and never another provider's (RFC 9700 section 4.4.2).
The provider is played on loopback by pytest-httpserver."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from models.actions import oidc_providers
from models.entities import OidcProvider
from tests.invitations.test_oidc_callback_refusals import (
    CLIENT_ID,
    answers_with,
    configure,
    id_token,
    issuer,  # noqa: F401 - the fixture
    refusal_page,
)
from tests.support import factories as f
from tests.support.oidc import audit_events


@pytest.fixture
def own(session, scene, settings, issuer) -> str:  # noqa: F811
    """The provider moved to its own callback: its callback id."""
    configure(session, scene, settings, issuer, shared=False)
    session.commit()
    return session.get(OidcProvider, scene.org.id).callback_id


def started(client, session, scene) -> tuple[str, str, str]:
    """An invitation's sign-in started: its state, nonce and the redirect URI it asked for."""
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    answer = client.get(f"/enroll/{issued.token}/sign-in")
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return query["state"][0], query["nonce"][0], query["redirect_uri"][0]


def test_an_answer_at_the_providers_own_callback_is_taken(
    client,
    session,
    sessions,
    scene,
    settings,
    issuer,  # noqa: F811 - the fixture imported above
    own,
    httpserver,
):
    state, nonce, redirect_uri = started(client, session, scene)
    assert redirect_uri == f"{settings.public_base_url}/enroll/oidc/callback/{own}"
    token = id_token(issuer, nonce, email="eve@example.com", email_verified=True)
    answers_with(httpserver, {"id_token": token, "access_token": "at", "token_type": "Bearer"})
    back = client.get(
        f"/enroll/oidc/callback/{own}", query_string={"code": "c", "state": state, "iss": issuer}
    )
    assert back.status_code == 303, back.text
    (exchange,) = [r for r, _ in httpserver.log if r.path.endswith("/token")]
    assert parse_qs(exchange.get_data(as_text=True))["redirect_uri"] == [redirect_uri]
    with sessions() as s:
        assert [e.action for e in audit_events(s, "enrollment.")] == ["enrollment.signed_in"]


@pytest.mark.parametrize("elsewhere", ["shared", "another-organisation", "unknown"])
def test_an_answer_at_another_callback_is_refused(
    client,
    session,
    sessions,
    scene,
    settings,
    issuer,  # noqa: F811 - the fixture imported above
    own,
    httpserver,
    elsewhere,
):
    """Its `iss` is right, its state too: only the callback it arrived at is not its own."""
    globex = oidc_providers.configure(
        session,
        organisation=f.make_org(session, name="Globex"),
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=settings.outbound_policy(),
        issuer="https://idp.globex.example",
        client_id=CLIENT_ID,
        client_secret="client-secret-0123456789abcdef",
    )
    session.commit()
    path = (
        "/enroll/oidc/callback"
        + {
            "shared": "",
            "another-organisation": f"/{globex.callback_id}",
            "unknown": "/0123456789abcdef0123456789abcdef",
        }[elsewhere]
    )
    state, _, _ = started(client, session, scene)
    answer = client.get(path, query_string={"code": "c", "state": state, "iss": issuer})
    refusal_page(answer, "came back to another provider")
    assert not [r for r, _ in httpserver.log if r.path.endswith("/token")]
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert (event.after["outcome"], event.organisation_id) == ("wrong_callback", scene.org.id)


def test_an_answer_after_the_provider_was_changed_is_refused(
    client,
    session,
    sessions,
    scene,
    settings,
    issuer,  # noqa: F811 - the fixture imported above
    own,
    httpserver,
):
    """The sign-in was started with one issuer; the organisation now has another: the code is
    sent to neither."""
    state, _, _ = started(client, session, scene)
    configure(session, scene, settings, httpserver.url_for("/another-idp"), shared=False)
    session.commit()
    answer = client.get(
        f"/enroll/oidc/callback/{own}", query_string={"code": "c", "state": state, "iss": issuer}
    )
    refusal_page(answer, "provider was changed during this sign-in")
    assert not [r for r, _ in httpserver.log if r.path.endswith("/token")]
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert event.after["outcome"] == "provider_changed"
