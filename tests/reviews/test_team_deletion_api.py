"""Team deletion and lost roles through the admin API and the CLI, with a real worker and a
loopback HTTP server standing in for the gateway; bad input changes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli.main import main
from models.actions import users as user_actions
from models.entities import AuditEvent, Organisation, RevocationReview, Team, VirtualApiKey
from models.enums import KeyType, Role, TeamRole
from tests.reviews.test_access_changes import team_world
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.worker import settings_env


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_deletes_a_team_its_keys_leave_the_gateway_and_a_review_opens(
    session, sessions, client, worker, gateway
):
    org, admin, _manager, _member, team, team_key, member_key, _b, _q = team_world(session)
    token = f.admin_token(session, org, admin)
    session.commit()
    team_id, key_id = team.id, str(team_key.id)

    deleted = client.delete(f"/api/v1/teams/{team_id}", headers=bearer(token))

    assert deleted.status_code == 200, deleted.json
    assert deleted.json["deleted"] is True and deleted.json["name"] == "Data"
    wait_relaying(lambda: gateway.keys_for({key_id}), what="the gateway invalidation")
    assert gateway.keys_for({key_id, str(member_key.id)}) == [{key_id}]

    def listed_once_acknowledged() -> dict:
        # the gateway has answered; the worker records it a moment later
        listed = client.get("/api/v1/reviews?cause=team_deleted", headers=bearer(token)).json
        return listed if listed["items"][0]["findings"].get("resolved") else {}

    listed = wait_relaying(listed_once_acknowledged, what="the key finding resolved")
    (item,) = listed["items"]
    assert item["id"] == deleted.json["review_id"]
    assert item["cause"] == "team_deleted" and item["user"] is None
    assert item["team"] == {"id": str(team_id), "name": "Data"}
    assert item["findings"] == {"open": 2, "resolved": 1}
    detail = client.get(f"/api/v1/reviews/{item['id']}", headers=bearer(token)).json
    assert detail["revocation"] is None and detail["context"]["team_name"] == "Data"

    def acknowledged() -> bool:
        finding = next(fi for fi in detail_now()["findings"] if fi["subject_id"] == key_id)
        return finding["invalidation_status"] == "acknowledged"

    def detail_now() -> dict:
        return client.get(f"/api/v1/reviews/{item['id']}", headers=bearer(token)).json

    wait_relaying(acknowledged, what="the finding records the gateway's acknowledgement")
    with sessions() as fresh:
        assert fresh.get(Team, team_id) is None
        assert fresh.get(VirtualApiKey, team_key.id).revoked is True


def test_bad_input_gets_a_problem_and_changes_nothing(session, client):
    org, admin, manager, _member, team, team_key, *_ = team_world(session)
    token = f.admin_token(session, org, admin)
    manager_token = f.admin_token(session, org, manager)
    session.commit()
    team_id, key_id = team.id, team_key.id
    audits = session.scalar(select(func.count(AuditEvent.id)))
    session.rollback()  # SQLite: no lock held by this session while the app writes

    unknown = client.delete(f"/api/v1/teams/{uuid.uuid4()}", headers=bearer(token))
    not_a_uuid = client.delete("/api/v1/teams/not-a-team", headers=bearer(token))
    by_manager = client.delete(f"/api/v1/teams/{team_id}", headers=bearer(manager_token))
    bad_cause = client.get("/api/v1/reviews?cause=fired", headers=bearer(token))

    assert unknown.status_code == 404 and unknown.mimetype == "application/problem+json"
    assert unknown.json["detail"] == "team not found"
    assert not_a_uuid.status_code == 404
    assert by_manager.status_code == 403 and by_manager.mimetype == "application/problem+json"
    assert bad_cause.status_code == 400 and bad_cause.mimetype == "application/problem+json"
    assert "cause must be one of revocation, team_deleted" in bad_cause.json["detail"]
    assert session.get(Team, team_id) is not None
    assert session.get(VirtualApiKey, key_id).revoked is False
    assert session.scalar(select(func.count(AuditEvent.id))) == audits
    assert session.scalars(select(RevocationReview)).all() == []


def test_admin_demoting_a_team_manager_opens_a_review_listed_by_cause(session, client):
    org, admin, manager, _member, team, team_key, *_ = team_world(session)
    token = f.admin_token(session, org, admin)
    session.commit()

    changed = client.put(
        f"/api/v1/teams/{team.id}/members/{manager.id}",
        json={"role": TeamRole.MEMBER.value},
        headers=bearer(token),
    )

    assert changed.status_code == 200, changed.json
    items = client.get("/api/v1/reviews?cause=manager_role_lost", headers=bearer(token)).json
    (item,) = items["items"]
    assert item["user"]["email"] == manager.email and item["findings"] == {"open": 1}
    other = client.get("/api/v1/reviews?cause=team_deleted", headers=bearer(token)).json
    assert other["items"] == []
    detail = client.get(f"/api/v1/reviews/{item['id']}", headers=bearer(token)).json
    (finding,) = detail["findings"]
    assert finding["subject_id"] == str(team_key.id) and finding["action"] == "hold_for_review"


@pytest.fixture
def run(settings):
    runner = CliRunner(env=settings_env(settings))
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_cli_lists_reviews_by_cause_and_refuses_an_unknown_cause(session, run):
    org = f.make_org(session)
    person = f.make_user(session, org, role=Role.ORG_ADMIN, email="dropped@example.com")
    f.make_user(session, org, role=Role.ORG_ADMIN)  # keeps the organisation an admin
    f.make_key(session, org, key_type=KeyType.ORGANISATION, created_by=person)
    session.commit()

    user_actions.edit_user(session, user=person, role=Role.USER, actor=f.SETUP)
    session.commit()

    dropped = run("reviews", "list", "--org", org.slug, "--cause", "org_role_dropped", "--json")
    none = run("reviews", "list", "--org", org.slug, "--cause", "left_team", "--json")
    text = run("reviews", "list", "--org", org.slug, "--cause", "org_role_dropped")
    bad = run("reviews", "list", "--org", org.slug, "--cause", "fired")

    assert dropped.exit_code == 0, dropped.output
    (item,) = json.loads(dropped.output)
    assert item["cause"] == "org_role_dropped" and item["user"]["email"] == "dropped@example.com"
    assert json.loads(none.output) == []
    assert "org_role_dropped" in text.output and "dropped@example.com" in text.output
    assert bad.exit_code == 2 and "Invalid value for '--cause'" in bad.output


def test_cli_sets_the_deleted_team_key_policy_with_an_audit_event(session, run):
    org = f.make_org(session)
    session.commit()

    changed = run("reviews", "team-key-policy", "--org", org.slug, "reassign")
    bad = run("reviews", "team-key-policy", "--org", org.slug, "keep")

    assert changed.exit_code == 0, changed.output
    assert bad.exit_code == 2
    session.expire_all()
    assert session.get(Organisation, org.id).settings.deleted_team_key_policy.value == "reassign"
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "organisation.settings_changed")
    ).one()
    assert event.before == {"deleted_team_key_policy": "revoke"}
    assert event.after == {"deleted_team_key_policy": "reassign"}
