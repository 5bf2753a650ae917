"""SCIM fixtures: an organisation with a SCIM token, a client that speaks SCIM to the app,
and the app served live on a loopback port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.serving import WSGIRequestHandler, make_server

from models.db import SessionFactory
from models.entities import Organisation
from tests.support import factories
from tests.support.state import change_checker

SCIM = "application/scim+json"


@dataclass
class ScimClient:
    """The Flask test client with the bearer token and SCIM media type of one IdP."""

    client: FlaskClient
    token: str
    base: str = "/scim/v2"

    def request(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": SCIM, **headers}
        kwargs: dict[str, Any] = {"headers": all_headers}
        if body is not None:
            kwargs["json"] = body
            all_headers.setdefault("Content-Type", SCIM)
        url = path if path.startswith("/") and path.startswith(self.base) else self.base + path
        return self.client.open(url, method=method, **kwargs)

    def get(self, path: str, **headers: str) -> Any:
        return self.request("GET", path, **headers)

    def post(self, path: str, body: Any, **headers: str) -> Any:
        return self.request("POST", path, body, **headers)

    def put(self, path: str, body: Any, **headers: str) -> Any:
        return self.request("PUT", path, body, **headers)

    def patch(self, path: str, body: Any, **headers: str) -> Any:
        return self.request("PATCH", path, body, **headers)

    def delete(self, path: str, **headers: str) -> Any:
        return self.request("DELETE", path, **headers)


# What a SCIM request writes. A Celery worker left running by an earlier test may still be
# finishing that test's tasks in tables of its own (key invalidations, reviews, audit), so
# the proof that a refused request stored nothing looks at these.
SCIM_TABLES = (
    "scim_users",
    "scim_emails",
    "users",
    "identity_links",
    "teams",
    "team_memberships",
    "scim_group_roles",
    "revocations",
)


@pytest.fixture
def unchanged(sessions: SessionFactory) -> Callable[[], None]:
    """Call it once before a request and once after: its SCIM tables must be as they were."""
    return change_checker(sessions, SCIM_TABLES)


@pytest.fixture
def org(session: Session) -> Organisation:
    organisation = factories.make_org(session, "Acme")
    session.commit()
    return organisation


@pytest.fixture
def scim_secret(session: Session, org: Organisation) -> str:
    secret = factories.scim_token(session, org)
    session.commit()
    return secret


@pytest.fixture
def scim(client: FlaskClient, scim_secret: str) -> ScimClient:
    return ScimClient(client, scim_secret)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app on a loopback port (a real HTTP server in a thread); yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    """A PatchOp body."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }
