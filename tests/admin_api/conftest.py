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
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models.actions.tokens import token_prefix
from models.db import SessionFactory
from models.enums import Role, TeamRole, TokenScope
from models.secrets import hash_secret, new_secret
from tests.support import factories as f
from tests.support.cleanup import empty_tables
from tests.support.copies import Rows, capture, copy_back, fresh_ids

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


@pytest.fixture(scope="session")
def built_world(engine: Engine, sessions: SessionFactory) -> tuple[World, Rows]:
    """The world built once per run (per xdist worker) through the domain operations, and its
    committed rows; the database is left empty."""
    empty_tables(engine)
    with sessions() as session:
        world = build_world(session)
    rows = capture(engine)
    empty_tables(engine)
    return world, rows


@pytest.fixture
def world(session: Session, engine: Engine, built_world: tuple[World, Rows]) -> World:
    """A copy of the built world for this test: new ids, secrets and slugs (no process can
    have cached any of them), its times moved to just before the test."""
    built, rows = built_world
    renames = fresh_ids(rows)
    secrets = {name: new_secret(token_prefix(TokenScope.ADMIN)) for name in built.tokens}
    for name, secret in secrets.items():
        old = built.tokens[name]
        renames[hash_secret(old)] = hash_secret(secret)
        renames[token_prefix_of(old)] = token_prefix_of(secret)
    for table, table_rows in rows.tables:
        if table.name == "organisations":
            renames.update({row["slug"]: f.fresh_slug() for row in table_rows})
    copy_back(engine, rows, renames)
    return World(
        org_a=renames[built.org_a],
        org_b=renames[built.org_b],
        alpha=renames[built.alpha],
        beta=renames[built.beta],
        gamma=renames[built.gamma],
        users={name: renames[user_id] for name, user_id in built.users.items()},
        tokens=secrets,
    )


def token_prefix_of(secret: str) -> str:
    """The part of a secret a token row keeps in the clear (as `create_token` stores it)."""
    return secret[: len(token_prefix(TokenScope.ADMIN)) + 5]


def build_world(session: Session) -> World:
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
