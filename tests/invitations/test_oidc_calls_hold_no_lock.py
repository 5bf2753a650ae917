"""A sign-in with the organisation's OpenID Connect provider holds no database transaction
while the provider is called (its discovery document, its token endpoint).

The provider (pytest-httpserver on loopback) tries, on each request it receives, to take the
embedded database's write lock with no busy wait (BEGIN IMMEDIATE, which every transaction of
odock-sync takes on SQLite, models/db.py). Before, the request kept the transaction in which it
read the invitation or the provider open across the call: the lock was held for as long as the
provider took to answer, and every SCIM and admin write waited on it (or answered 503). On
PostgreSQL such a read holds no row lock (only a pooled connection), so these tests check the
lock on SQLite and the flows' outcome on both."""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from werkzeug import Request, Response

from tests.invitations.test_oidc_callback_refusals import configure

FREE, HELD = "free", "held"


@pytest.fixture
def probes(httpserver: HTTPServer, engine: Engine) -> list[str]:
    """What the database's write lock was each time the provider was called."""
    seen: list[str] = []

    def probe() -> None:
        if engine.dialect.name != "sqlite":
            seen.append(FREE)  # a read holds no lock here; see the module's docstring
            return
        database = engine.url.database
        assert database is not None
        connection = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("COMMIT")
            seen.append(FREE)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            seen.append(HELD)
        finally:
            connection.close()

    def discovery(request: Request) -> Response:
        probe()
        issuer = str(httpserver.url_for("/idp"))
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
        }
        return Response(json.dumps(document), content_type="application/json")

    def token(request: Request) -> Response:
        probe()
        return Response('{"error": "invalid_grant"}', status=400, content_type="application/json")

    httpserver.expect_request("/idp/.well-known/openid-configuration").respond_with_handler(
        discovery
    )
    httpserver.expect_request("/idp/token", method="POST").respond_with_handler(token)
    return seen


@pytest.fixture
def provider(httpserver: HTTPServer, session, scene, settings, probes) -> str:
    issuer = str(httpserver.url_for("/idp"))
    configure(session, scene, settings, issuer)
    session.commit()
    return issuer


def test_an_invitees_sign_in_holds_no_lock_while_the_provider_answers(
    client, session, scene, provider, probes
):
    issued = scene.invite(session, email="eve@example.com")
    session.commit()
    answer = client.get(f"/enroll/{issued.token}/sign-in")
    assert answer.status_code == 303, answer.text
    state = parse_qs(urlsplit(answer.headers["Location"]).query)["state"][0]
    assert probes == [FREE]  # the discovery document, read to start the sign-in

    answer = client.get(
        "/enroll/oidc/callback", query_string={"code": "c", "state": state, "iss": provider}
    )
    assert answer.status_code == 403, answer.text  # the token endpoint refused the code
    assert probes == [FREE, FREE, FREE]  # the discovery document again, the token endpoint


def test_an_admins_console_sign_in_holds_no_lock_while_the_provider_answers(
    client, session, scene, provider, probes
):
    answer = client.get("/console/oidc/sign-in", query_string={"organisation": scene.org.slug})
    assert answer.status_code == 303, answer.text
    state = parse_qs(urlsplit(answer.headers["Location"]).query)["state"][0]
    assert probes == [FREE]

    answer = client.get(
        "/console/oidc/callback", query_string={"code": "c", "state": state, "iss": provider}
    )
    assert answer.status_code == 403, answer.text
    assert probes == [FREE, FREE, FREE]
