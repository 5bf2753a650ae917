"""Console arrangements: an organisation with an admin, a manager of one team, and people."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from models.entities import Organisation, Team, User
from models.enums import Role, TeamRole
from tests.support import factories as f
from tests.support.net import bound_listener

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Org:
    org: Organisation
    admin: User
    manager: User
    member: User
    outsider: User  # in a team the manager does not manage
    team: Team
    other_team: Team
    admin_token: str
    manager_token: str
    member_token: str


@pytest.fixture
def org(session) -> Org:
    org = f.make_org(session, name="Acme Labs")
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email="ada@acme.example")
    manager = f.make_user(session, org, role=Role.MANAGER, email="max@acme.example")
    member = f.make_user(session, org, email="mia@acme.example")
    outsider = f.make_user(session, org, email="otto@acme.example")
    team = f.make_team(session, org, "Research")
    other_team = f.make_team(session, org, "Finance")
    f.add_member(session, team, manager, TeamRole.MANAGER)
    f.add_member(session, team, member)
    f.add_member(session, other_team, outsider)
    tokens = [f.admin_token(session, org, person) for person in (admin, manager, member)]
    session.commit()
    return Org(org, admin, manager, member, outsider, team, other_team, *tokens)


@pytest.fixture(scope="module")
def live_server(settings, engine) -> Iterator[str]:
    """The web app on a loopback port of its own, its PUBLIC_BASE_URL pointing there (the
    redirect URI the provider is told about)."""
    from webhooks.app import create_app
    from webhooks.context import EXTENSION

    with bound_listener() as listener:
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        app = create_app(settings.model_copy(update={"public_base_url": base}))
        server = make_server("127.0.0.1", 0, app, threaded=True, fd=listener.fileno())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=10)
    app.extensions[EXTENSION].engine.dispose()


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, token: str) -> FlaskClient:
    """Sign in as the token's person; the client then carries the session cookie."""
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in", data={"token": token, "csrf": csrf_of(form.get_data(as_text=True))}
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


# The browser test drives a real slapd directory (and the run's chromium, tests/conftest.py).
from tests.ldap.conftest import directory, make_connector, slapd, sync  # noqa: E402, F401

# The deliveries tests send to the loopback hook receiver of the reviews tests.
from tests.reviews.conftest import hook_server, hooks  # noqa: E402, F401
