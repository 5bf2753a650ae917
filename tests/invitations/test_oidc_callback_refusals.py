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
from tests.support.oidc import audit_events

CLIENT_ID = "odock-sync"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def configure(session, scene, settings, issuer: str) -> None:
    """The scene's organisation signs in with the provider at `issuer`."""
    oidc_providers.configure(
        session,
        organisation=scene.org,
        secret_key=settings.secret_key,
        actor=scene.actor(scene.admin_viewer),
        policy=settings.outbound_policy(),
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret="client-secret-0123456789abcdef",
    )


@pytest.fixture
def issuer(httpserver: HTTPServer, session, scene, settings) -> str:
    """A provider that names itself in its answers (RFC 9207), set for the scene's organisation."""
    issuer = httpserver.url_for("/idp")
    httpserver.expect_request("/idp/.well-known/openid-configuration").respond_with_json(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "authorization_response_iss_parameter_supported": True,
        }
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
    refusal_page(answer, "another provider")
    assert not [r for r, _ in httpserver.log if r.path.endswith("/token")]
    with sessions() as s:
        assert [e.after["outcome"] for e in audit_events(s, "enrollment.")] == ["provider_refused"]


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
    refusal_page(answer, "JWKS could not be read")
    with sessions() as s:
        assert [e.after["outcome"] for e in audit_events(s, "enrollment.")] == ["provider_refused"]


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
    issuer = httpserver.url_for("/garbled")
    httpserver.expect_request("/garbled/.well-known/openid-configuration").respond_with_json(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            **garbage,
        }
    )
    configure(session, scene, settings, issuer)
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    answer = client.get(f"/enroll/{issued.token}/sign-in")
    assert answer.status_code == 503
    assert answer.mimetype == "text/html"
    assert 'data-kind="unavailable"' in answer.text
    assert "discovery document" in answer.text
