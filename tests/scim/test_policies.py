"""Organisation SCIM policies: the hard-delete rule and the CLI that sets them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models.actions.reviews import open_revocation_review
from models.actions.scim import purge_deleted_users
from models.entities import (
    AuditEvent,
    IdentityLink,
    Revocation,
    ScimGroupRole,
    User,
    VirtualApiKey,
)
from models.enums import ReviewStatus, Role, ScimDeletePolicy, Source, UserStatus
from tests.scim.payloads import okta_create_user
from tests.support import factories


def deleted_user(scim, session, org, email="gone@example.com"):
    body = scim.post("/Users", okta_create_user(email)).json
    user = session.scalar(select(User).where(User.email_key == email))
    factories.make_budget(session, org, user)  # a finding that stays open until decided
    session.commit()
    scim.delete(f"/Users/{body['id']}")
    session.expire_all()
    revocation = session.scalar(select(Revocation).where(Revocation.user_id == user.id))
    # The run's worker may be opening the same review; the operation opens it only once.
    review = open_revocation_review(session, revocation_id=revocation.id, actor=factories.SETUP)
    session.commit()
    return user, review


def test_hard_delete_waits_for_the_policy_and_the_resolved_review(scim, session, org):
    user, review = deleted_user(scim, session, org)
    key = factories.make_key(session, org, owner=user)
    session.commit()
    actor = factories.SETUP
    assert purge_deleted_users(session, organisation=org, actor=actor) == []  # policy: revoke
    org.settings.scim_delete_policy = ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW
    assert purge_deleted_users(session, organisation=org, actor=actor) == []  # review open
    review.status = ReviewStatus.RESOLVED
    assert purge_deleted_users(session, organisation=org, actor=actor) == [user.id]
    session.commit()
    session.expire_all()
    assert session.get(User, user.id) is None
    assert session.scalar(select(IdentityLink)) is None
    assert session.get(VirtualApiKey, key.id).owner_user_id is None
    assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "user.hard_deleted"))


def test_hard_delete_spares_people_another_source_still_links(scim, session, org):
    user, review = deleted_user(scim, session, org)
    review.status = ReviewStatus.RESOLVED
    org.settings.scim_delete_policy = ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW
    session.add(
        IdentityLink(
            organisation_id=org.id, user_id=user.id, source=Source.LDAP, external_id="uuid-1"
        )
    )
    assert purge_deleted_users(session, organisation=org, actor=factories.SETUP) == []
    assert session.get(User, user.id).status is UserStatus.REVOKED


@pytest.fixture
def cli_env(monkeypatch, settings):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CELERY_BROKER_URL", settings.celery_broker_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    return CliRunner()


def test_cli_sets_group_roles_and_the_delete_policy(cli_env, session, org):
    session.commit()
    run = lambda *args: cli_env.invoke(main, list(args), catch_exceptions=False)  # noqa: E731
    assert (
        run(
            "scim",
            "group-role",
            "set",
            "--org",
            org.slug,
            "--group",
            "Admins",
            "--role",
            "ORG_ADMIN",
        ).exit_code
        == 0
    )
    listed = run("scim", "group-role", "list", "--org", org.slug, "--json")
    assert json.loads(listed.output) == [{"group": "Admins", "role": "ORG_ADMIN"}]
    assert (
        run("scim", "delete-policy", "--org", org.slug, "hard_delete_after_review").exit_code == 0
    )
    assert json.loads(run("scim", "purge", "--org", org.slug, "--json").output) == []
    assert (
        run("scim", "group-role", "remove", "--org", org.slug, "--group", "admins").exit_code == 0
    )
    session.expire_all()
    assert session.scalar(select(ScimGroupRole)) is None
    session.refresh(org.settings)
    assert org.settings.scim_delete_policy is ScimDeletePolicy.HARD_DELETE_AFTER_REVIEW
    session.rollback()  # SQLite: release the lock before the CLI writes
    bad = cli_env.invoke(
        main, ["scim", "group-role", "set", "--org", "nope", "--group", "x", "--role", "USER"]
    )
    assert bad.exit_code != 0
    assert "nope" in bad.output
    super_admin = cli_env.invoke(
        main,
        [
            "scim",
            "group-role",
            "set",
            "--org",
            org.slug,
            "--group",
            "x",
            "--role",
            Role.SUPER_ADMIN,
        ],
    )
    assert super_admin.exit_code != 0


def test_a_group_role_for_a_name_with_an_invisible_character_is_refused(cli_env, session, org):
    """A role mapping names its group: "Admins" with a zero-width space would grant ORG_ADMIN
    to the members of a look-alike group (models.text.check_key_name, as team names)."""
    session.commit()
    for group in ("Ad\u200bmins", "\u202eAdmins", "Admins\u3164"):
        args = ["--org", org.slug, "--group", group, "--role", "ORG_ADMIN"]
        refused = cli_env.invoke(main, ["scim", "group-role", "set", *args])
        assert refused.exit_code != 0, refused.output
        assert "invisible" in refused.output
    session.expire_all()
    assert session.scalar(select(ScimGroupRole)) is None
