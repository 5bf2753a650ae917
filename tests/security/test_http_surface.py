"""Hostile requests below the routes: bytes of the request line as a server or proxy may pass
them to the app, and the framing the real web process (gunicorn with the buffering worker)
reads before the app sees a request. Each is refused with a 4xx in the protocol's format of
its path, and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from models.enums import Role
from tests.support import factories as f
from tests.support.state import database_state

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def credentials(session: Session) -> dict[str, dict[str, str]]:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    session.flush()
    headers = {
        "admin": {"Authorization": f"Bearer {f.admin_token(session, org, admin)}"},
        "scim": {"Authorization": f"Bearer {f.scim_token(session, org)}"},
        "public": {},
    }
    session.commit()
    return headers


def assert_format(path: str, answer: Any) -> None:
    """A 4xx in the format of the protocol the path speaks, without a traceback."""
    text = answer.get_data(as_text=True)
    assert 400 <= answer.status_code < 500, (answer.status_code, text[:300])
    assert "Traceback" not in text
    if path.startswith("/scim/v2"):
        assert answer.mimetype == "application/scim+json", answer.mimetype
        body = json.loads(text)
        assert body["schemas"] == [SCIM_ERROR] and body["status"] == str(answer.status_code)
    elif path.startswith(("/console", "/enroll", "/reviews")):
        assert answer.mimetype == "text/html", answer.mimetype
    else:
        assert answer.mimetype == "application/problem+json", answer.mimetype
        assert json.loads(text)["status"] == answer.status_code


# A query string as WSGI carries it: each byte as one latin-1 character. "\xe9" is the byte
# 0xE9 sent raw, not percent-encoded: latin-1 "é", never UTF-8.
RAW_QUERIES = ["q=\xe9", "code=x&state=caf\xe9", "\xff=1", "filter=\xc3"]


@pytest.mark.parametrize("query", RAW_QUERIES)
@pytest.mark.parametrize(
    "protocol, path",
    [
        ("public", "/healthz"),
        ("admin", "/api/v1/users"),
        ("scim", "/scim/v2/Users"),
        ("public", "/console/sign-in"),
        ("public", "/console/oidc/callback"),
        ("public", "/hooks/okta/nobody"),
    ],
)
def test_a_query_string_that_is_not_utf8_is_a_400_in_the_protocols_format(
    client: FlaskClient, session: Session, sessions: Any, protocol: str, path: str, query: str
) -> None:
    """werkzeug decodes the raw query string strictly before parsing it: a byte that is not
    UTF-8 raised UnicodeDecodeError in the shared query guard, a 500 on every route.
    gunicorn refuses such a request line itself; a front that forwards it does not."""
    headers = credentials(session)[protocol]
    before = database_state(sessions)
    answer = client.get(path, headers=headers, environ_overrides={"QUERY_STRING": query})
    assert_format(path, answer)
    assert answer.status_code == 400
    assert "not valid UTF-8" in answer.get_data(as_text=True)
    assert database_state(sessions) == before
