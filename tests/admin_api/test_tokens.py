"""Admin API tokens: stored hashed, shown once, refused when revoked or not for this API."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, update

from models.base import Base, utcnow
from models.entities import ApiToken, User
from models.enums import TokenScope, UserStatus
from tests.admin_api.conftest import World, assert_problem
from tests.support import factories as f


def test_tokens_are_stored_only_as_hashes(sessions, world: World) -> None:
    secret = world.tokens["admin"]
    with sessions() as fresh:
        hashes = set(fresh.scalars(select(ApiToken.token_hash)))
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
        for table in Base.metadata.sorted_tables:
            for row in fresh.execute(select(table)):
                assert all(secret not in str(value) for value in row), table.name


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer odk_admin_not-a-real-token",
        "Bearer " + "x" * 5000,
        "Token {admin}",
        "Bearer {admin}x",
    ],
    ids=["none", "empty", "no-secret", "blank", "basic", "unknown", "huge", "scheme", "altered"],
)
def test_missing_or_wrong_credentials_are_401(client, world: World, header) -> None:
    headers = {"Authorization": header.format(admin=world.tokens["admin"])} if header else {}
    response = client.get("/api/v1/users", headers=headers)
    problem = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.tokens["admin"] not in str(problem)


def test_the_scheme_is_case_insensitive(client, world: World) -> None:
    headers = {"Authorization": f"bearer {world.tokens['admin']}"}
    assert client.get("/api/v1/users", headers=headers).status_code == 200


def test_a_revoked_token_is_401(client, session, world: World) -> None:
    from models.actions.tokens import revoke_token
    from tests.support.factories import SETUP

    assert client.get("/api/v1/me", headers=world.auth("manager")).status_code == 200
    token = session.scalars(
        select(ApiToken).where(ApiToken.user_id == world.users["manager"])
    ).one()
    revoke_token(session, token=token, actor=SETUP)
    session.commit()
    assert_problem(client.get("/api/v1/me", headers=world.auth("manager")), 401)


@pytest.mark.parametrize("status", [UserStatus.REVOKED, UserStatus.PENDING])
def test_the_token_of_a_user_who_is_not_active_is_refused(
    client, session, world: World, unchanged, status
) -> None:
    session.execute(update(User).where(User.id == world.users["admin"]).values(status=status))
    session.commit()
    unchanged()
    for method, path, body in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {"email": "x@acme.test", "name": "X"}),
        ("POST", f"/api/v1/users/{world.users['user']}/revoke", None),
    ]:
        response = client.open(path, method=method, json=body, headers=world.auth("admin"))
        assert_problem(response, 403, detail="not active")
    unchanged()


def test_revoking_a_user_revokes_their_token_and_reactivation_does_not_revive_it(
    client, world: World
) -> None:
    manager = world.users["manager"]
    assert (
        client.post(f"/api/v1/users/{manager}/revoke", headers=world.auth("admin")).status_code
        == 200
    )
    assert_problem(client.get("/api/v1/me", headers=world.auth("manager")), 401)
    assert (
        client.post(f"/api/v1/users/{manager}/reactivate", headers=world.auth("admin")).status_code
        == 200
    )
    assert_problem(client.get("/api/v1/me", headers=world.auth("manager")), 401)


def test_a_scim_token_is_refused_on_the_admin_api(client, session, world: World) -> None:
    from models.entities import Organisation

    scim = f.scim_token(session, session.get_one(Organisation, world.org_a))
    session.commit()
    for path in ("/api/v1/users", "/api/v1/teams", "/api/v1/me"):
        assert_problem(client.get(path, headers={"Authorization": f"Bearer {scim}"}), 401)


def test_a_token_is_checked_against_its_own_scope(session, world: World) -> None:
    """The domain lookup itself refuses an admin secret presented as a SCIM one."""
    from models.actions.tokens import authenticate

    assert authenticate(session, secret=world.tokens["admin"], scope=TokenScope.SCIM) is None
    found = authenticate(session, secret=world.tokens["admin"], scope=TokenScope.ADMIN)
    assert found is not None and found.revoked_at is None
    assert found.created_at <= utcnow()
