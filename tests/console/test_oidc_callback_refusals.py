"""What the console's sign-in page says when the provider's answer is refused at
/console/oidc/callback: a fixed text per kind of refusal, never the provider's words, an
email it did not verify or a link from the request (those are in the audit trail). The
provider is played on loopback by pytest-httpserver, so each answer can be chosen."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pytest_httpserver import HTTPServer

from models.actions import oidc_providers
from tests.console.conftest import Org
from tests.invitations.test_oidc_callback_refusals import PHISHING, shows_nothing_of_the_request
from tests.support import factories as f
from tests.support.oidc import audit_events, serve_discovery

CLIENT_ID = "odock-sync"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture
def issuer(httpserver: HTTPServer, session, org: Org, settings) -> str:
    issuer = serve_discovery(httpserver, "/idp")
    oidc_providers.configure(
        session,
        organisation=org.org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=settings.outbound_policy(),
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret="client-secret-0123456789abcdef",
        shared_callback=True,  # these answers come back to the shared callback
    )
    session.commit()
    return issuer


def started(client: FlaskClient, org: Org) -> tuple[str, str]:
    """A console sign-in started in this client: its state and nonce."""
    answer = client.get("/console/oidc/sign-in", query_string={"organisation": org.org.slug})
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return query["state"][0], query["nonce"][0]


def refused_with(answer, text: str) -> None:
    shows_nothing_of_the_request(answer)
    assert answer.status_code == 403
    assert 'id="sign-in-refused"' in answer.text
    assert text in answer.text


def test_the_providers_refusal_is_a_fixed_text_its_words_are_audited(client, sessions, org, issuer):
    state, _ = started(client, org)
    answer = client.get(
        "/console/oidc/callback",
        query_string={
            "error": "access_denied",
            "error_description": PHISHING,
            "error_uri": "https://evil.example/help",
            "state": state,
        },
    )
    refused_with(answer, "cancelled or refused by your identity provider")
    with sessions() as s:
        (event,) = audit_events(s, "console.")
        assert event.after["outcome"] == "provider_refused"
        assert PHISHING in event.after["reason"]


@pytest.mark.parametrize(
    ("email", "verified", "outcome", "text"),
    [
        (PHISHING, False, "unverified_email", "has not verified the email you signed in with"),
        ("locked.call.evil.example@evil.example", True, "not_a_person", "not a person of"),
    ],
    ids=["unverified", "unknown"],
)
def test_the_email_the_provider_sent_is_not_shown(
    client, sessions, org, issuer, httpserver, email, verified, outcome, text
):
    state, nonce = started(client, org)
    now = int(time.time())
    claims = {"iss": issuer, "sub": "1", "aud": CLIENT_ID, "exp": now + 300, "iat": now}
    claims |= {"nonce": nonce, "email": email, "email_verified": verified}
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
    httpserver.expect_request("/idp/token", method="POST").respond_with_json(
        {"id_token": token, "access_token": "at", "token_type": "Bearer"}
    )
    httpserver.expect_request("/idp/jwks").respond_with_json(KeySet([KEY]).as_dict(private=False))
    answer = client.get("/console/oidc/callback", query_string={"code": "c", "state": state})
    refused_with(answer, text)
    with sessions() as s:
        assert [(e.actor, e.after["outcome"]) for e in audit_events(s, "console.")] == [
            (email, outcome)
        ]
