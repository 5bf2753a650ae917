"""The `odock-sync invitations` commands, against the test database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from models.enums import UserStatus
from tests.support import factories as f
from tests.support.worker import settings_env


@pytest.fixture
def run(settings, monkeypatch):
    for name, value in settings_env(settings).items():
        if name.isupper() and name.lower() in settings.model_dump():
            monkeypatch.setenv(name, value)

    def invoke(*args: str):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result

    return invoke


def test_invite_list_show_resend_revoke(session, scene, run):
    slug = scene.org.slug
    created = run(
        "invitations",
        "create",
        "--org",
        slug,
        "--email",
        "cli@example.com",
        "--team",
        "Research:MANAGER",
        "--role",
        "MANAGER",
        "--json",
    )
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert data["teams"] == [{"team_id": str(scene.team.id), "role": "MANAGER"}]
    listed = run("invitations", "list", "--org", slug, "--status", "pending", "--json")
    assert [i["email"] for i in json.loads(listed.stdout)] == ["cli@example.com"]
    shown = json.loads(run("invitations", "show", "--org", slug, data["id"], "--json").stdout)
    # The run's worker may already be sending it; the history holds at most that send.
    assert all(d["send_number"] == 1 for d in shown["deliveries"])
    limited = run("invitations", "resend", "--org", slug, data["id"])
    assert limited.exit_code != 0 and "wait before resending" in limited.output
    revoked = run("invitations", "revoke", "--org", slug, data["id"], "--json")
    assert json.loads(revoked.stdout)["status"] == "revoked"
    refreshed = run("invitations", "refresh", "--org", slug, data["id"])
    assert "revoked" in refreshed.output
    dup = run("invitations", "create", "--org", slug, "--email", scene.member.email)
    assert dup.exit_code != 0 and "ACTIVE" in dup.output


def test_approve_and_decline_pending_users(session, scene, run):
    a = f.make_user(session, scene.org, email="a@example.com", status=UserStatus.PENDING)
    b = f.make_user(session, scene.org, email="b@example.com", status=UserStatus.PENDING)
    session.commit()
    approved = run("invitations", "approve-user", "--org", scene.org.slug, a.email, "--json")
    assert json.loads(approved.stdout)["status"] == "ACTIVE"
    declined = run("invitations", "decline-user", "--org", scene.org.slug, b.email, "--json")
    assert json.loads(declined.stdout)["status"] == "REVOKED"
    again = run("invitations", "approve-user", "--org", scene.org.slug, a.email)
    assert again.exit_code != 0


def test_expire_command(session, scene, run):
    from datetime import timedelta

    from models.base import utcnow

    issued = scene.invite(session, "late@example.com")
    issued.invitation.expires_at = utcnow() - timedelta(minutes=1)
    session.commit()
    result = run("invitations", "expire", "--json")
    assert json.loads(result.stdout) == {"expired": 1}
