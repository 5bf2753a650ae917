"""A real OpenID Connect provider on loopback: the certified `oidc-provider` package from the
npm registry (version pinned in tests/support/oidc_provider/package-lock.json), installed with
`npm ci` into that folder's node_modules (gitignored) the first time a test needs it, and run
by tests/support/oidc_provider/provider.mjs.

Its development login form takes any login and password; the login is the account's email
(one starting with "unverified" has email_verified false; one starting with "entra." has no
email_verified but Entra ID's xms_edov true).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.entities import AuditEvent
from tests.support.net import bound_listener
from tests.support.wait import wait_until

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"


def install_provider() -> None:
    """`npm ci` once; concurrent test runs of one checkout wait for the first."""
    with (PROVIDER_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
            return
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROVIDER_DIR,
            check=True,
            timeout=600,
        )


@dataclass
class LoopbackProvider:
    process: subprocess.Popen[bytes]
    issuer: str
    client_id: str
    client_secret: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_provider(
    *,
    redirect_uris: list[str],
    log_path: Path,
    userinfo_only: bool = False,
    iss: str = "",
    listener: socket.socket | None = None,
    client_secret: str | None = None,
) -> LoopbackProvider:
    """The provider on a loopback port of its own (or `listener`'s: a listening socket from
    `bound_listener`, handed over to it and closed here), with one confidential client;
    `userinfo_only` keeps the email out of the ID token (it is then only in the userinfo
    answer); `iss` "omit" makes a provider that never sends `iss` in its authorization
    responses nor says it does, "omit-advertised" one that says it does but does not. A
    given `listener` and `client_secret` let the issuer be set at odock-sync first (its
    redirect URIs then known), as an admin does."""
    install_provider()
    listener = listener or bound_listener()
    port = listener.getsockname()[1]
    client = {
        "client_id": "odock-sync-test",
        "client_secret": client_secret or secrets.token_urlsafe(24),
        "redirect_uris": redirect_uris,
    }
    env = {**os.environ, "NODE_ENV": "development"}
    with listener:
        process = subprocess.Popen(
            ["node", "provider.mjs", str(port), json.dumps(client)]
            + (["userinfo-only"] if userinfo_only else [])
            + ([f"iss={iss}"] if iss else [])
            + [f"listen-fd={listener.fileno()}"],
            cwd=PROVIDER_DIR,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=[listener.fileno()],
        )
    provider = LoopbackProvider(
        process=process,
        issuer=f"http://127.0.0.1:{port}",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        log_path=log_path,
    )
    try:
        wait_until(lambda: _answers(provider), timeout=60, what="the OpenID Connect provider")
    except AssertionError:
        provider.stop()
        raise AssertionError(f"the provider did not start:\n{provider.log()}") from None
    return provider


def _answers(provider: LoopbackProvider) -> bool:
    if provider.process.poll() is not None:
        raise AssertionError(f"the provider exited:\n{provider.log()}")
    try:
        url = provider.issuer + "/.well-known/openid-configuration"
        document: Any = requests.get(url, timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    return bool(document.get("issuer") == provider.issuer)


def sign_in_at_provider(page: Any, email: str) -> None:
    """Fill the provider's login form in a Playwright page (any password is accepted)."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", "any password")
    page.click("button.login-submit")


def sign_in_through_the_invitation(page: Any, link: str, email: str, *, name: str = "") -> None:
    """Open the invitation link, follow "Sign in with …", sign in at the provider as `email`;
    given a `name`, accept the invitation with it."""
    page.goto(link)
    page.click("#sign-in")
    sign_in_at_provider(page, email)
    if name:
        page.fill("#name", name)
        page.click("#accept")


def send_to_the_provider_with_a_tampered_state(route: Any) -> None:
    """A Playwright route handler: our redirect to the provider, with one character of its
    state changed (the provider then sends that state back to the callback)."""
    response = route.fetch(max_redirects=0)
    parts = urlsplit(response.headers["location"])
    query = dict(parse_qsl(parts.query))
    query["state"] = query["state"][:-1] + ("A" if query["state"][-1] != "A" else "B")
    location = urlunsplit(parts._replace(query=urlencode(query)))
    route.fulfill(response=response, headers={**response.headers, "location": location})


def audit_events(session: Session, prefix: str) -> list[AuditEvent]:
    """The audit events whose action starts with `prefix`, in the order they happened."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.startswith(prefix))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )


def serve_discovery(httpserver: Any, path: str, **more: Any) -> str:
    """A provider's discovery document at `path` on a pytest-httpserver (`more` adds or
    replaces its fields); the provider's issuer."""
    issuer = str(httpserver.url_for(path))
    httpserver.expect_request(f"{path}/.well-known/openid-configuration").respond_with_json(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            **more,
        }
    )
    return issuer
