"""What a browser sees when the provider's answer is refused at /enroll/oidc/callback: an HTML
page (never a 500), the refusal in the audit trail, and the code sent nowhere it should not
go. The provider is played on loopback by pytest-httpserver, so each answer can be broken."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pytest_httpserver import HTTPServer

from models.actions import oidc_providers
from tests.support.oidc import audit_events, serve_discovery

CLIENT_ID = "odock-sync"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
# What every page of a refusal by (or of an answer from) the provider says, whatever it said.
PROVIDER_REFUSED = "cancelled or refused by your identity provider"


def configure(session, scene, settings, issuer: str, *, shared: bool = True) -> None:
    """The scene's organisation signs in with the provider at `issuer`, coming back to the
    shared callback (`shared`) or to the provider's own."""
    oidc_providers.configure(
        session,
        organisation=scene.org,
        secret_key=settings.secret_key,
        actor=scene.actor(scene.admin_viewer),
        policy=settings.outbound_policy(),
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret="client-secret-0123456789abcdef",
        shared_callback=shared,
    )


@pytest.fixture
def issuer(httpserver: HTTPServer, session, scene, settings) -> str:
    """A provider that names itself in its answers (RFC 9207), set for the scene's organisation."""
    issuer = serve_discovery(
        httpserver, "/idp", authorization_response_iss_parameter_supported=True
    )
    configure(session, scene, settings, issuer)
    session.commit()
    return issuer


def started(client: FlaskClient, session, scene) -> tuple[str, str, str]:
    """An invitation's sign-in started in this client: its token, state and nonce."""
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    answer = client.get(f"/enroll/{issued.token}/sign-in")
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return issued.token, query["state"][0], query["nonce"][0]


def refusal_page(answer, reason: str) -> None:
    assert answer.status_code == 403
    assert answer.mimetype == "text/html"
    assert 'data-kind="sign_in_refused"' in answer.text
    assert reason in answer.text


def test_an_answer_naming_another_provider_never_reaches_a_token_endpoint(
    client, session, sessions, scene, issuer, httpserver
):
    _, state, _ = started(client, session, scene)
    answer = client.get(
        "/enroll/oidc/callback",
        query_string={"code": "code-of-b", "state": state, "iss": "https://other-idp.example"},
    )
    refusal_page(answer, "came from another identity provider than the one it was started")
    assert not [r for r, _ in httpserver.log if r.path.endswith("/token")]
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert event.after["outcome"] == "other_issuer"
        assert "https://other-idp.example" in event.after["reason"]


@pytest.mark.parametrize("said", [{}, {"error": "access_denied"}], ids=["code", "error"])
def test_no_iss_from_a_provider_that_says_it_always_sends_one_is_refused(
    client, session, sessions, scene, issuer, httpserver, said
):
    """RFC 9207 section 2.4: an answer, a refusal too, without the iss its provider promised."""
    _, state, _ = started(client, session, scene)
    answer = client.get("/enroll/oidc/callback", query_string={"code": "c", "state": state, **said})
    refusal_page(answer, "did not say which identity provider sent it")
    assert not [r for r, _ in httpserver.log if r.path.endswith("/token")]
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert event.after["outcome"] == "issuer_missing"


def test_a_jwks_past_its_size_is_a_refusal_page(
    client, session, sessions, scene, issuer, httpserver
):
    _, state, nonce = started(client, session, scene)
    now = int(time.time())
    claims = {"iss": issuer, "sub": "1", "aud": CLIENT_ID, "exp": now + 300, "iat": now}
    claims |= {"nonce": nonce, "email": "eve@example.com", "email_verified": True}
    id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
    httpserver.expect_request("/idp/token", method="POST").respond_with_json(
        {"id_token": id_token, "access_token": "at", "token_type": "Bearer"}
    )
    padded = {**KeySet([KEY]).as_dict(private=False), "padding": "x" * 300_000}
    httpserver.expect_request("/idp/jwks").respond_with_data(
        json.dumps(padded), content_type="application/json"
    )
    answer = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": issuer}
    )
    refusal_page(answer, PROVIDER_REFUSED)
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert event.after["outcome"] == "provider_refused"
        assert "JWKS could not be read" in event.after["reason"]


@pytest.mark.parametrize(
    "garbage",
    [
        {"token_endpoint_auth_methods_supported": 5},
        {"id_token_signing_alg_values_supported": {"RS256": True}},
        {"id_token_signing_alg_values_supported": [None]},
        {"token_endpoint": ["https://idp.example.com/token"]},
    ],
    ids=["auth-methods-number", "algorithms-object", "algorithms-null", "endpoint-list"],
)
def test_a_garbled_discovery_document_is_the_unavailable_page(
    client, session, scene, settings, httpserver, garbage
):
    issuer = serve_discovery(httpserver, "/garbled", **garbage)
    configure(session, scene, settings, issuer)
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    answer = client.get(f"/enroll/{issued.token}/sign-in")
    assert answer.status_code == 503
    assert answer.mimetype == "text/html"
    assert 'data-kind="unavailable"' in answer.text
    assert "discovery document" in answer.text


PHISHING = "Your account is locked. Call +1 555 0100 or visit https://evil.example/unlock"


def id_token(issuer: str, nonce: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": issuer, "sub": "1", "aud": CLIENT_ID, "exp": now + 300, "iat": now}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, body | {"nonce": nonce} | claims, KEY)


def answers_with(httpserver: HTTPServer, token: dict) -> None:
    httpserver.expect_request("/idp/token", method="POST").respond_with_json(token)
    httpserver.expect_request("/idp/jwks").respond_with_json(KeySet([KEY]).as_dict(private=False))


def shows_nothing_of_the_request(answer) -> None:
    for chosen in ("evil.example", "Call +1", "locked", "access_denied"):
        assert chosen not in answer.text


def test_the_providers_refusal_is_a_fixed_text_its_words_are_audited(
    client, session, sessions, scene, issuer, httpserver
):
    """The provider's error, error_description and error_uri come in the request: anyone can
    put a link in them. The page says what happened in its own words."""
    _, state, _ = started(client, session, scene)
    answer = client.get(
        "/enroll/oidc/callback",
        query_string={
            "error": "access_denied",
            "error_description": PHISHING,
            "error_uri": "https://evil.example/help",
            "state": state,
            "iss": issuer,
        },
    )
    shows_nothing_of_the_request(answer)
    refusal_page(answer, PROVIDER_REFUSED)
    with sessions() as s:
        (event,) = audit_events(s, "enrollment.")
        assert event.after["outcome"] == "provider_refused"
        assert "access_denied" in event.after["reason"]
        assert PHISHING in event.after["reason"]


def test_the_providers_error_alone_is_not_shown_either(
    client, session, sessions, scene, issuer, httpserver
):
    _, state, _ = started(client, session, scene)
    answer = client.get(
        "/enroll/oidc/callback",
        query_string={"error": PHISHING, "state": state, "iss": issuer},
    )
    shows_nothing_of_the_request(answer)
    refusal_page(answer, PROVIDER_REFUSED)
    with sessions() as s:
        assert [PHISHING in e.after["reason"] for e in audit_events(s, "enrollment.")] == [True]


def test_the_token_endpoints_refusal_is_a_fixed_text(
    client, session, sessions, scene, issuer, httpserver
):
    _, state, _ = started(client, session, scene)
    httpserver.expect_request("/idp/token", method="POST").respond_with_json(
        {"error": "invalid_grant", "error_description": PHISHING}, status=400
    )
    answer = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": issuer}
    )
    shows_nothing_of_the_request(answer)
    refusal_page(answer, PROVIDER_REFUSED)
    with sessions() as s:
        assert [e.after["outcome"] for e in audit_events(s, "enrollment.")] == ["provider_refused"]


def test_an_unverified_email_is_not_shown(client, session, sessions, scene, issuer, httpserver):
    """An email the provider has not verified is whatever its account holder typed."""
    _, state, nonce = started(client, session, scene)
    typed = "Call +1 555 0100 or visit https://evil.example/unlock"
    answers_with(
        httpserver,
        {
            "id_token": id_token(issuer, nonce, email=typed, email_verified=False),
            "access_token": "at",
            "token_type": "Bearer",
        },
    )
    answer = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": issuer}
    )
    shows_nothing_of_the_request(answer)
    refusal_page(answer, "has not verified the email you signed in with")
    with sessions() as s:
        assert [(e.actor, e.after["outcome"]) for e in audit_events(s, "enrollment.")] == [
            (typed, "unverified_email")
        ]
