"""The mix-up defence (RFC 9700 section 4.4) at the console's sign-in, in headless Chromium
against real providers on loopback (the certified `oidc-provider`, tests/support/oidc.py),
one per organisation: each provider comes back to a callback of its own, and an answer is
taken only at the callback its sign-in asked for, and only if its `iss` (RFC 9207), when it
has one or its provider promised one, names the provider the sign-in was started with.

Each provider is set at odock-sync first and then started with the redirect URI odock-sync
shows, as an admin registers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import select

from models.actions import oidc_providers
from models.entities import ApiToken, OidcProvider, Organisation
from models.enums import Role, TokenScope
from tests.console.conftest import Org
from tests.support import factories as f
from tests.support.net import bound_listener
from tests.support.oidc import LoopbackProvider, audit_events, sign_in_at_provider, start_provider

pytestmark = pytest.mark.slow
CLIENT_ID = "odock-sync-test"  # the loopback provider's client id, the same at every provider
CLIENT_SECRET = "client-secret-0123456789abcdef"
Providers = Callable[..., LoopbackProvider]


@pytest.fixture
def providers(session, settings, live_server, tmp_path) -> Iterator[Providers]:
    """Set an organisation's provider, then start it knowing the redirect URI to register:
    the organisation's own callback, or the shared one (`shared`), and `also` another one;
    `iss` as start_provider."""
    started: list[LoopbackProvider] = []

    def provide(
        organisation: Organisation, *, shared: bool = False, iss: str = "", also: str = ""
    ) -> Any:
        listener = bound_listener()  # the provider's port, held until it listens there
        port = listener.getsockname()[1]
        provider = oidc_providers.configure(
            session,
            organisation=organisation,
            secret_key=settings.secret_key,
            actor=f.SETUP,
            policy=settings.outbound_policy(),
            issuer=f"http://127.0.0.1:{port}",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            shared_callback=shared,
        )
        session.commit()
        uri = oidc_providers.describe(provider, base_url=live_server)["console_redirect_uri"]
        log = tmp_path / f"provider-{port}.log"
        started.append(
            start_provider(
                redirect_uris=[uri, *([also] if also else [])],
                log_path=log,
                iss=iss,
                listener=listener,
                client_secret=CLIENT_SECRET,
            )
        )
        return started[-1]

    yield provide
    for provider in started:
        provider.stop()


@pytest.fixture
def globex(session) -> Organisation:
    """A second organisation, with its own admin."""
    organisation = f.make_org(session, name="Globex")
    f.make_user(session, organisation, role=Role.ORG_ADMIN, email="gus@globex.example")
    session.commit()
    return organisation


def callback_id(sessions, organisation: Organisation) -> str:
    with sessions() as s:
        return s.get(OidcProvider, organisation.id).callback_id


def sign_in(chromium, base: str, slug: str, login: str, *, route: Any = None) -> tuple[str, list]:
    """Start a console sign-in for `slug`, sign in at the provider as `login`: what the console
    then says ("signed in as …" or "refused: …") and the callback URLs the browser asked for;
    `route` is (pattern, handler) for Playwright, to play an attacker's redirect."""
    context = chromium.new_context()
    page = context.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: "/console/oidc/callback" in r.url and callbacks.append(r.url))
    if route:
        page.route(*route)
    page.goto(f"{base}/console/oidc/sign-in?organisation={slug}")
    sign_in_at_provider(page, login)
    page.wait_for_selector("#signed-in-as, #sign-in-refused")
    if page.locator("#sign-in-refused").count():
        said = "refused: " + page.locator("#sign-in-refused").inner_text()
    else:
        said = "signed in as " + page.locator("#signed-in-as").inner_text()
    context.close()
    return said, callbacks


def console_sessions(sessions) -> list[ApiToken]:
    with sessions() as s:
        return list(s.scalars(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE)))


def refusals(sessions) -> list[tuple[str, Any]]:
    with sessions() as s:
        events = audit_events(s, "console.sign_in_refused")
        return [(e.after["outcome"], e.organisation_id) for e in events]


def test_an_admin_signs_in_at_the_providers_own_callback(
    org: Org, providers, chromium, live_server, sessions
):
    providers(org.org)
    own = callback_id(sessions, org.org)
    said, callbacks = sign_in(chromium, live_server, org.org.slug, "ada@acme.example")
    assert said == "signed in as ada@acme.example"
    assert callbacks[0].startswith(f"{live_server}/console/oidc/callback/{own}?")
    assert "iss=" in callbacks[0]  # the provider names itself (RFC 9207)
    assert [t.user_id for t in console_sessions(sessions)] == [org.admin.id]


@pytest.mark.parametrize("shared", [False, True], ids=["own-callback", "shared-callback"])
def test_a_provider_that_never_sends_iss_still_signs_in(
    org: Org, providers, chromium, live_server, sessions, shared
):
    """RFC 9207 is optional: a provider that neither sends `iss` nor says it does is taken at
    its own callback, and at the shared one a deployment registered before."""
    providers(org.org, shared=shared, iss="omit")
    said, callbacks = sign_in(chromium, live_server, org.org.slug, "ada@acme.example")
    assert said == "signed in as ada@acme.example"
    assert "iss=" not in callbacks[0]
    assert callbacks[0].startswith(
        f"{live_server}/console/oidc/callback" + ("?" if shared else "/")
    )
    assert [t.user_id for t in console_sessions(sessions)] == [org.admin.id]


def test_an_answer_from_another_organisations_provider_is_refused(
    org: Org, globex, providers, chromium, live_server, sessions
):
    """The mix-up on the shared callback: a sign-in started for Globex is sent (by an attacker)
    to Acme's provider instead, where the person signs in; Acme's provider answers, naming
    itself, with Globex's state. Its code goes to no token endpoint and nobody is signed in."""
    acme_provider = providers(org.org, shared=True)
    globex_provider = providers(globex, shared=True)

    def to_acmes_provider(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        location = response.headers["location"]
        assert location.startswith(globex_provider.issuer + "/")
        swapped = acme_provider.issuer + location.removeprefix(globex_provider.issuer)
        route.fulfill(response=response, headers={**response.headers, "location": swapped})

    said, callbacks = sign_in(
        chromium,
        live_server,
        globex.slug,
        "ada@acme.example",
        route=(re.compile(r"/console/oidc/sign-in\?"), to_acmes_provider),
    )
    assert said.startswith("refused: ") and "another identity provider" in said
    assert parse_qs(urlsplit(callbacks[0]).query)["iss"] == [acme_provider.issuer]
    assert console_sessions(sessions) == []
    assert refusals(sessions) == [("other_issuer", globex.id)]
    assert not _token_requests(acme_provider)


@pytest.mark.parametrize("elsewhere", ["globex", "shared"])
def test_an_answer_arriving_at_another_callback_is_refused(
    org: Org, globex, providers, chromium, live_server, sessions, elsewhere
):
    """Acme's sign-in is sent (by an attacker) to Acme's provider asking to come back to
    Globex's callback, or to the shared one, which that provider also accepts (a client both
    organisations registered): the answer is refused there, though its `iss` is right."""
    providers(globex)
    target = callback_id(sessions, globex) if elsewhere == "globex" else ""
    arrival = f"{live_server}/console/oidc/callback" + (f"/{target}" if target else "")
    acme_provider = providers(org.org, also=arrival)

    def come_back_elsewhere(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        parts = urlsplit(response.headers["location"])
        query = dict(parse_qsl(parts.query)) | {"redirect_uri": arrival}
        location = urlunsplit(parts._replace(query=urlencode(query)))
        route.fulfill(response=response, headers={**response.headers, "location": location})

    said, callbacks = sign_in(
        chromium,
        live_server,
        org.org.slug,
        "ada@acme.example",
        route=(re.compile(r"/console/oidc/sign-in\?"), come_back_elsewhere),
    )
    assert said.startswith("refused: ") and "another provider's address" in said
    assert callbacks[0].startswith(f"{arrival}?")
    assert parse_qs(urlsplit(callbacks[0]).query)["iss"] == [acme_provider.issuer]
    assert console_sessions(sessions) == []
    assert refusals(sessions) == [("wrong_callback", org.org.id)]
    assert not _token_requests(acme_provider)


def test_no_iss_from_a_provider_that_promised_one_is_refused(
    org: Org, providers, chromium, live_server, sessions
):
    providers(org.org, iss="omit-advertised")
    said, _ = sign_in(chromium, live_server, org.org.slug, "ada@acme.example")
    assert said.startswith("refused: ") and "did not say which identity provider" in said
    assert console_sessions(sessions) == []
    assert refusals(sessions) == [("issuer_missing", org.org.id)]


def _token_requests(provider: LoopbackProvider) -> list[str]:
    """The token requests the provider logged (provider.mjs prints one line for each)."""
    return [line for line in provider.log().splitlines() if line.startswith("token ")]
