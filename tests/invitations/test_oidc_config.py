"""Configuring an organisation's OpenID Connect provider: admin API and CLI, encrypted secret,
audited, and bad input refused clearly with nothing changed."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli.main import main
from models import encryption
from models.actions import oidc_providers
from models.entities import AuditEvent, OidcProvider
from tests.support import factories as f
from tests.support.worker import settings_env

GOOD = {
    "issuer": "https://idp.example.com/oauth2/default",
    "client_id": "0oa1odock",
    "client_secret": "s3cret-value-0123456789",
}


@pytest.fixture
def admin_headers(session, scene):
    token = f.admin_token(session, scene.org, scene.admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def audit_actions(sessions) -> list[str]:
    with sessions() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("sign_in.%"))
                .order_by(AuditEvent.occurred_at, AuditEvent.id)  # no set order otherwise
            ).all()
        )


def test_admin_sets_shows_and_clears_the_provider(client, admin_headers, sessions, scene, settings):
    put = client.put("/api/v1/sign-in/oidc", json=GOOD, headers=admin_headers)
    assert put.status_code == 200, put.get_json()
    body = put.get_json()
    own = body["callback_id"]
    assert re.fullmatch("[0-9a-f]{32}", own)
    assert body == {
        "configured": True,
        "issuer": GOOD["issuer"],
        "client_id": GOOD["client_id"],
        "display_name": "idp.example.com",
        "callback_id": own,
        "shared_callback": False,
        "redirect_uri": f"{settings.public_base_url}/enroll/oidc/callback/{own}",
        "console_redirect_uri": f"{settings.public_base_url}/console/oidc/callback/{own}",
        "own_redirect_uri": f"{settings.public_base_url}/enroll/oidc/callback/{own}",
        "own_console_redirect_uri": f"{settings.public_base_url}/console/oidc/callback/{own}",
    }
    assert GOOD["client_secret"] not in put.get_data(as_text=True)
    with sessions() as s:
        stored = s.get(OidcProvider, scene.org.id)
        assert GOOD["client_secret"] not in stored.sealed_client_secret
        assert (
            encryption.decrypt(
                settings.secret_key, stored.sealed_client_secret, purpose=oidc_providers.PURPOSE
            )
            == GOOD["client_secret"]
        )
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "sign_in.oidc_configured"))
        public = ("issuer", "client_id", "display_name", "callback_id", "shared_callback")
        assert event.after == {k: body[k] for k in public}
        assert GOOD["client_secret"] not in json.dumps([event.before, event.after])
    assert client.get("/api/v1/sign-in/oidc", headers=admin_headers).get_json() == body
    assert client.delete("/api/v1/sign-in/oidc", headers=admin_headers).status_code == 204
    assert (
        client.get("/api/v1/sign-in/oidc", headers=admin_headers).get_json()["configured"] is False
    )
    gone = client.delete("/api/v1/sign-in/oidc", headers=admin_headers)
    assert gone.status_code == 404 and gone.mimetype == "application/problem+json"
    assert audit_actions(sessions) == ["sign_in.oidc_configured", "sign_in.oidc_cleared"]


def test_a_provider_moves_between_the_shared_callback_and_its_own(client, admin_headers, settings):
    """A provider registered with the shared callback stays on it until an admin moves it to
    its own (both URIs shown meanwhile); another issuer gets callbacks of its own, new."""
    base = settings.public_base_url

    def put(**change):
        answer = client.put("/api/v1/sign-in/oidc", json={**GOOD, **change}, headers=admin_headers)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    shared = put(shared_callback=True)
    own = shared["callback_id"]
    assert (shared["redirect_uri"], shared["console_redirect_uri"]) == (
        f"{base}/enroll/oidc/callback",
        f"{base}/console/oidc/callback",
    )
    assert shared["own_console_redirect_uri"] == f"{base}/console/oidc/callback/{own}"
    assert put(client_id="0oa2odock")["redirect_uri"] == f"{base}/enroll/oidc/callback"
    moved = put(shared_callback=False)
    assert (moved["callback_id"], moved["redirect_uri"]) == (own, shared["own_redirect_uri"])
    other = put(issuer="https://idp.example.org")
    assert other["callback_id"] != own
    assert other["redirect_uri"] == f"{base}/enroll/oidc/callback/{other['callback_id']}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issuer": "ftp://idp.example.com"}, "issuer"),
        ({"issuer": "http://idp.example.com"}, "issuer"),  # plain http only on loopback
        ({"issuer": "https://idp.example.com/?tenant=1"}, "issuer"),
        ({"issuer": "https://user:pw@idp.example.com"}, "issuer"),
        ({"issuer": "https://idp.example.com:99999"}, "issuer"),
        ({"client_id": "has space"}, "client_id"),
        ({"client_secret": "tab\tinside"}, "client_secret"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"client_secret": ""}, "client_secret"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(client, admin_headers, sessions, change, field):
    answer = client.put("/api/v1/sign-in/oidc", json={**GOOD, **change}, headers=admin_headers)
    assert answer.status_code in {400, 422}, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    assert field in json.dumps(answer.get_json())
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OidcProvider)) == 0
    assert audit_actions(sessions) == []


def test_only_an_admin_may_configure(client, session, scene, sessions):
    token = f.admin_token(session, scene.org, scene.member)
    session.commit()
    answer = client.put(
        "/api/v1/sign-in/oidc", json=GOOD, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OidcProvider)) == 0


@pytest.fixture
def run(settings, monkeypatch):
    for name, value in settings_env(settings).items():
        if name.isupper() and name.lower() in settings.model_dump():
            monkeypatch.setenv(name, value)
    return lambda *args, **kw: CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def test_cli_sets_shows_and_clears(run, scene, sessions):
    slug = scene.org.slug
    set_ = run(
        "sign-in", "oidc-set", "--org", slug, "--issuer", GOOD["issuer"],
        "--client-id", GOOD["client_id"], "--name", "Okta",
        input=GOOD["client_secret"] + "\n",
    )  # fmt: skip
    assert set_.exit_code == 0, set_.output
    assert "sign in with Okta" in set_.output and "/enroll/oidc/callback/" in set_.output
    assert GOOD["client_secret"] not in set_.output
    shown = json.loads(run("sign-in", "show", "--org", slug, "--json").stdout)
    assert (shown["display_name"], shown["configured"]) == ("Okta", True)
    bad = run(
        "sign-in", "oidc-set", "--org", slug, "--issuer", "http://idp.example.com",
        "--client-id", "other", "--client-secret", "x" * 20,
    )  # fmt: skip
    assert bad.exit_code == 1 and "issuer must be an https URL" in bad.output
    assert "Traceback" not in bad.output
    assert json.loads(run("sign-in", "show", "--org", slug, "--json").stdout) == shown
    cleared = run("sign-in", "oidc-clear", "--org", slug)
    assert cleared.exit_code == 0, cleared.output
    assert audit_actions(sessions) == ["sign_in.oidc_configured", "sign_in.oidc_cleared"]
