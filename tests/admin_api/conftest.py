"""A small world of two organisations, each role with a token, for the admin API tests.

Organisation A: an admin; a manager who holds the team role MANAGER in team Alpha; a user
who is a MEMBER of Alpha (the manager's own team); a colleague in Alpha; an outsider in team
Beta (another team). Organisation B: an admin, a user and team Gamma (another organisation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from models.enums import Role, TeamRole
from tests.support import factories as f

# tests/mass_change imports database_state from here.
from tests.support.state import database_state as database_state


@dataclass
class World:
    org_a: uuid.UUID
    org_b: uuid.UUID
    alpha: uuid.UUID
    beta: uuid.UUID
    gamma: uuid.UUID
    users: dict[str, uuid.UUID]
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def world(session: Session) -> World:
    org_a, org_b = f.make_org(session, "Acme"), f.make_org(session, "Globex")
    people = {
        "admin": f.make_user(session, org_a, role=Role.ORG_ADMIN, email="admin@acme.test"),
        "manager": f.make_user(session, org_a, role=Role.MANAGER, email="manager@acme.test"),
        "user": f.make_user(session, org_a, role=Role.USER, email="user@acme.test"),
        "colleague": f.make_user(session, org_a, email="colleague@acme.test"),
        "outsider": f.make_user(session, org_a, email="outsider@acme.test"),
        "newcomer": f.make_user(session, org_a, email="newcomer@acme.test"),
        "b_admin": f.make_user(session, org_b, role=Role.ORG_ADMIN, email="admin@globex.test"),
        "b_user": f.make_user(session, org_b, email="user@globex.test"),
    }
    alpha, beta = f.make_team(session, org_a, "Alpha"), f.make_team(session, org_a, "Beta")
    gamma = f.make_team(session, org_b, "Gamma")
    f.add_member(session, alpha, people["manager"], TeamRole.MANAGER)
    f.add_member(session, alpha, people["user"])
    f.add_member(session, alpha, people["colleague"])
    f.add_member(session, beta, people["outsider"])
    f.add_member(session, gamma, people["b_user"])
    tokens = {
        name: f.admin_token(session, org_b if name.startswith("b_") else org_a, people[name])
        for name in ("admin", "manager", "user", "b_admin")
    }
    session.commit()
    return World(
        org_a=org_a.id,
        org_b=org_b.id,
        alpha=alpha.id,
        beta=beta.id,
        gamma=gamma.id,
        users={name: person.id for name, person in people.items()},
        tokens=tokens,
    )


def assert_problem(response: Any, status: int, *, detail: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem document with this status (and detail fragment)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    if detail is not None:
        assert detail.lower() in body["detail"].lower(), body
    return body


def call(client: FlaskClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(path, method=method, **kwargs)
