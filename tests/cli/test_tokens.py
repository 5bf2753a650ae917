"""`odock-sync token create|list|revoke`: expiry, listing without secrets, revocation that the
admin API honours at once, and clear errors (no traceback) that change nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.entities import ApiToken, AuditEvent


@pytest.fixture
def acme(run) -> None:
    run("org", "create", "--name", "Acme", "--slug", "acme")
    run("org", "create", "--name", "Globex", "--slug", "globex")
    run(
        "user",
        "create",
        "--org",
        "acme",
        "--email",
        "a@acme.test",
        "--name",
        "A",
        "--role",
        "ORG_ADMIN",
    )


def _count(sessions, model) -> int:
    with sessions() as fresh:
        return fresh.scalar(select(func.count()).select_from(model)) or 0


def test_create_with_an_expiry_then_list_without_secrets(acme, run, run_json) -> None:
    made = run_json(
        "token",
        "create",
        "--org",
        "acme",
        "--scope",
        "scim",
        "--name",
        "Okta",
        "--expires-in",
        "90d",
    )
    assert made["token"].startswith("odk_scim_") and made["status"] == "active"
    expires = made["expires_at"]
    assert str(utcnow() + timedelta(days=89, hours=23)) < expires.replace("T", " ")
    admin = run_json(
        "token", "create", "--org", "acme", "--scope", "admin", "--user", "a@acme.test"
    )
    assert admin["expires_at"] is None and admin["user_email"] == "a@acme.test"
    listed = run_json("token", "list", "--org", "acme")
    assert [t["id"] for t in listed] == [admin["id"], made["id"]]
    text = run("token", "list", "--org", "acme").output
    for output in (str(listed), text):
        assert made["token"] not in output and admin["token"] not in output
    assert "Okta" in text and made["prefix"] in text and "never" in text
    assert run_json("token", "list", "--org", "globex") == []
    assert run("token", "list", "--org", "globex").output.strip() == "no tokens"


def test_revoke_is_audited_and_the_admin_api_refuses_the_token(
    acme, run, run_json, client, sessions
) -> None:
    made = run_json("token", "create", "--org", "acme", "--scope", "admin", "--user", "a@acme.test")
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    revoked = run_json("token", "revoke", "--org", "acme", made["id"])
    assert revoked["status"] == "revoked" and "token" not in revoked
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    again = run("token", "revoke", "--org", "acme", made["id"]).output
    assert "already revoked" in again
    with sessions() as fresh:
        actions = list(
            fresh.scalars(select(AuditEvent.action).where(AuditEvent.target_id == made["id"]))
        )
    assert sorted(actions) == ["token.created", "token.revoked"]
    assert run_json("token", "list", "--org", "acme", "--status", "revoked")[0]["id"] == made["id"]
    assert run_json("token", "list", "--org", "acme", "--status", "active") == []


@pytest.mark.parametrize("lifetime", ["soon", "0d", "12x", "-3d", "90", "1.5d", "9999999d"])
def test_a_bad_expires_in_is_a_clear_error_and_creates_nothing(
    acme, run, sessions, lifetime
) -> None:
    result = run(
        "token", "create", "--org", "acme", "--scope", "scim", "--expires-in", lifetime, ok=False
    )
    assert "--expires-in" in result.output and "12h, 90d or 2w" in result.output
    assert _count(sessions, ApiToken) == 0


def test_a_lifetime_beyond_ten_years_is_refused(acme, run, sessions) -> None:
    result = run(
        "token", "create", "--org", "acme", "--scope", "scim", "--expires-in", "600w", ok=False
    )
    assert "at most 3650 days" in result.output
    assert _count(sessions, ApiToken) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "acme", "not-a-uuid"], "is not a token id"),
        (["--org", "acme", str(uuid.uuid4())], "no token"),
        (["--org", "nowhere", str(uuid.uuid4())], "nowhere"),
    ],
    ids=["not-a-uuid", "unknown", "unknown-org"],
)
def test_revoke_errors_are_clear(acme, run, args, message) -> None:
    assert message in run("token", "revoke", *args, ok=False).output


def test_a_token_of_another_organisation_cannot_be_revoked(acme, run, run_json, sessions) -> None:
    made = run_json("token", "create", "--org", "acme", "--scope", "scim")
    assert "no token" in run("token", "revoke", "--org", "globex", made["id"], ok=False).output
    with sessions() as fresh:
        assert fresh.get_one(ApiToken, uuid.UUID(made["id"])).revoked_at is None
