"""The command line: --json output, the secret shown once, and clean errors (no traceback)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli.main import main
from models.entities import ApiToken, User
from models.enums import Role
from tests.support import factories
from tests.support.keys import TEST_SECRET_KEY


def test_org_user_and_token_commands_print_json(run_json, sessions) -> None:
    org = run_json("org", "create", "--name", "Acme Corp")
    assert org["slug"] == "acme-corp" and uuid.UUID(org["id"])
    person = run_json(
        "users",
        "create",
        "--org",
        "acme-corp",
        "--email",
        "Ann@Acme.test",
        "--name",
        "Ann",
        "--role",
        "ORG_ADMIN",
    )
    assert (person["email"], person["role"], person["status"]) == (
        "Ann@Acme.test",
        "ORG_ADMIN",
        "ACTIVE",
    )
    token = run_json(
        "token", "create", "--org", "acme-corp", "--scope", "admin", "--user", "ann@acme.test"
    )
    assert token["token"].startswith("odk_admin_") and token["scope"] == "admin"
    scim = run_json("token", "create", "--org", "acme-corp", "--scope", "scim")
    assert scim["token"].startswith("odk_scim_")
    with sessions() as fresh:
        stored = set(fresh.scalars(select(ApiToken.token_hash)))
    assert stored == {
        hashlib.sha256(t.encode()).hexdigest() for t in (token["token"], scim["token"])
    }


def test_a_token_from_the_cli_opens_the_admin_api(run, run_json, client) -> None:
    run("org", "create", "--name", "Acme", "--slug", "acme")
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
    text = run("token", "create", "--org", "acme", "--scope", "admin", "--user", "a@acme.test")
    secret = text.output.strip()
    assert secret.startswith("odk_admin_") and "\n" not in secret
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200 and response.get_json()["email"] == "a@acme.test"


def test_users_list_and_show(run, run_json) -> None:
    run("org", "create", "--name", "Acme", "--slug", "acme")
    for email, role in [("a@acme.test", "ORG_ADMIN"), ("b@acme.test", "USER")]:
        run("users", "create", "--org", "acme", "--email", email, "--name", email, "--role", role)
    listed = run_json("users", "list", "--org", "acme")
    assert [u["email"] for u in listed] == ["a@acme.test", "b@acme.test"]
    assert [u["email"] for u in run_json("users", "list", "--org", "acme", "--role", "user")] == [
        "b@acme.test"
    ]
    assert run_json("users", "list", "--org", "acme", "--status", "revoked") == []
    shown = run_json("users", "show", "--org", "acme", "B@ACME.TEST")
    assert shown["email"] == "b@acme.test"
    assert {"teams", "api_keys", "usage", "budgets", "quotas"} <= set(shown)
    assert run_json("users", "show", "--org", "acme", shown["id"])["id"] == shown["id"]
    assert "b@acme.test" in run("users", "list", "--org", "acme").output


def test_db_upgrade(run_json) -> None:
    assert run_json("db", "upgrade") == {"status": "upgraded", "revision": _head()}


def _head() -> str:
    from alembic.script import ScriptDirectory

    from models.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["user", "create", "--org", "nope", "--email", "x@y.test", "--name", "X"],
            "no organisation with slug 'nope'",
        ),
        (
            ["user", "create", "--org", "acme", "--email", "TAKEN@acme.test", "--name", "X"],
            "already exists",
        ),
        (
            [
                "user",
                "create",
                "--org",
                "acme",
                "--email",
                "x@acme.test",
                "--name",
                "X",
                "--role",
                "GOD",
            ],
            "Invalid value for '--role'",
        ),
        (
            [
                "user",
                "create",
                "--org",
                "acme",
                "--email",
                "x@acme.test",
                "--name",
                "X",
                "--role",
                "SUPER_ADMIN",
            ],
            "Invalid value for '--role'",
        ),
        (
            ["user", "create", "--org", "acme", "--email", "not-an-email", "--name", "X"],
            "not a valid email",
        ),
        (["org", "create", "--name", "Acme", "--slug", "acme"], "already exists"),
        (["org", "create", "--name", "Bad", "--slug", "Not A Slug"], "slug must be"),
        (["token", "create", "--org", "acme", "--scope", "admin"], "name the user"),
        (
            ["token", "create", "--org", "acme", "--scope", "admin", "--user", "ghost@acme.test"],
            "no user with email",
        ),
        (["token", "create", "--org", "acme", "--scope", "root"], "Invalid value for '--scope'"),
        (["users", "show", "--org", "acme", "ghost@acme.test"], "no user"),
        (["users", "show", "--org", "acme", str(uuid.uuid4())], "not found"),
        (["users", "list", "--org", "acme", "--status", "gone"], "Invalid value for '--status'"),
        (["demo", "--slug", "acme"], "already exists"),
        (["demo", "--slug", "acme"], "odock-sync demo --slug acme-2"),
        (["demo", "--slug", "acme"], "odock-sync token create --org acme --scope admin"),
    ],
    ids=[
        "bad-org",
        "duplicate-email",
        "bad-role",
        "super-admin",
        "bad-email",
        "duplicate-org",
        "bad-slug",
        "admin-token-without-user",
        "token-for-ghost",
        "bad-scope",
        "show-ghost",
        "show-unknown-id",
        "bad-status",
        "demo-clash",
        "demo-clash-another-slug",
        "demo-clash-new-token",
    ],
)
def test_mistakes_are_clean_errors_that_change_nothing(run, sessions, args, message) -> None:
    run("org", "create", "--name", "Acme", "--slug", "acme")
    run("user", "create", "--org", "acme", "--email", "taken@acme.test", "--name", "T")
    with sessions() as fresh:
        before = fresh.scalar(select(func.count()).select_from(User))
    result = run(*args, ok=False)
    assert message in result.output
    with sessions() as fresh:
        assert fresh.scalar(select(func.count()).select_from(User)) == before


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://db.example/odock"),
        ("BROKER_POLL_INTERVAL", "often"),
        ("SMTP_PORT", "99999"),
        ("LOG_LEVEL", "CHATTY"),
        ("MAX_BODY_BYTES", "12"),
        ("CELERY_BROKER_URL", "garbage"),
        ("PUBLIC_BASE_URL", "odock-sync.example.com"),
        ("GATEWAY_URL", "ftp://gateway.internal"),
        ("ODOCK_MANAGEMENT_URL", "management.internal:8080"),
        ("DATABASE_POOL_SIZE", "-1"),
        ("SECRET_KEY", "0123456789abcdef0123456789abcde"),  # 31 bytes
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["org", "create", "--name", "X"],
        ["demo"],
        ["serve"],
        ["users", "list", "--org", "x"],
    ],
    ids=lambda c: c[0],
)
def test_a_bad_environment_variable_is_named(cli_env, monkeypatch, variable, value, command):
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert "invalid settings" in result.output and variable in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["org", "create", "--name", "X"],
        ["demo"],
        ["serve"],
        ["users", "list", "--org", "x"],
    ],
    ids=lambda c: c[0],
)
def test_a_server_database_needs_a_secret_key(cli_env, monkeypatch, command):
    """Unset on PostgreSQL, each host would generate a key of its own: refused, not made."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("SECRET_KEY", "")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert "invalid settings: SECRET_KEY: must be set" in result.output
    assert "Traceback" not in result.output


def test_service_urls_take_any_case_of_their_scheme() -> None:
    """RFC 3986 section 3.1: a scheme is case-insensitive; HTTPS://… is a valid URL."""
    from models.settings import Settings

    settings = Settings(secret_key=TEST_SECRET_KEY, gateway_url="HTTPS://gateway.internal")

    assert settings.gateway_url == "HTTPS://gateway.internal"


def test_an_unreachable_database_is_a_clean_error(cli_env, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    for command in (["db", "upgrade"], ["org", "create", "--name", "X"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert "cannot use the database" in result.output and "Traceback" not in result.output


def test_sign_in_forget_account_lets_a_person_bind_a_new_provider_account(run_json, sessions):
    from models.actions import console_sessions, provider_accounts
    from models.entities import OidcSubject

    with sessions() as session:
        org = factories.make_org(session, "Forget")
        admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="ada@forget.test")
        account = provider_accounts.ProviderAccount("https://idp.example.com", "00u-old")
        console_sessions.sign_in_verified_email(
            session,
            organisation_id=org.id,
            email=admin.email,
            lifetime=timedelta(hours=1),
            account=account,
        )
        session.commit()
        slug = org.slug

    answer = run_json("sign-in", "forget-account", "--org", slug, "--email", "ada@forget.test")

    assert answer == {"email": "ada@forget.test", "accounts_forgotten": 1}
    with sessions() as session:
        assert session.scalars(select(OidcSubject)).all() == []
