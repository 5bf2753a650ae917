"""The admin API and the `odock-sync ldap` commands for connectors, runs and approvals."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models.entities import AuditEvent, DirectoryConnector, OutboxMessage
from tests.ldap.conftest import (
    a_run_held_over_the_api,
    admin_auth,
    connector_fields,
    linked_users,
)
from tests.support import factories
from tests.support.relay import wait_relaying
from tests.support.slapd import ROOT_PASSWORD
from tests.support.worker import settings_env


def test_connector_crud_never_shows_or_logs_the_password(client, session, directory):
    _, auth = admin_auth(session)
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    created = client.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.json
    assert created.json["has_bind_password"] is True
    assert ROOT_PASSWORD not in created.get_data(as_text=True)
    cid = created.json["id"]
    with session.begin():
        stored = session.get_one(DirectoryConnector, uuid.UUID(cid))
        assert (
            stored.bind_password_encrypted and ROOT_PASSWORD not in stored.bind_password_encrypted
        )
        events = session.scalars(select(AuditEvent).where(AuditEvent.target_type == "directory"))
        assert all(ROOT_PASSWORD not in json.dumps(e.after) for e in events)
    session.rollback()
    listed = client.get("/api/v1/directory/connectors", headers=auth)
    assert [c["id"] for c in listed.json["items"]] == [cid]
    patched = client.patch(
        f"/api/v1/directory/connectors/{cid}", json={"page_size": 50}, headers=auth
    )
    assert patched.status_code == 200 and patched.json["page_size"] == 50
    tested = client.post(f"/api/v1/directory/connectors/{cid}/test", headers=auth)
    assert tested.json["ok"] and tested.json["users"] == 4
    assert client.delete(f"/api/v1/directory/connectors/{cid}", headers=auth).status_code == 204


def test_bad_connector_input_is_a_clear_400(client, session, directory):
    _, auth = admin_auth(session)
    base = connector_fields(directory)
    cases = [
        {**base, "server_urls": ["http://example.org"]},
        {**base, "server_urls": ["ldap://[::1"]},  # a 500 before (urlparse's ValueError)
        {**base, "base_dn": "not a dn"},
        {**base, "user_filter": "objectClass=person"},
        {**base, "page_size": 0},
        {**base, "preset": "novell"},
        {**base, "attribute_mapping": {"stable_id": 5}},
        {**base, "group_roles": {"admins": "SUPER_ADMIN"}},
        # accepted before, and then did nothing or harm at every sync:
        {**base, "group_teams": {"engineering": " "}},
        {**base, "attribute_mapping": {"user_filter": "(((("}},  # as at the top level
        {**base, "attribute_mapping": {"group_filter": "objectClass=group"}},
        {**base, "group_teams": {"engineering": "x" * 201}},
        {**base, "group_teams": {"": "Engineering"}},
        *(
            {**base, "attribute_mapping": mapping}
            for mapping in (
                {"disabled": [{"attribute": "userAccountControl", "kind": "bitmask", "value": v}]}
                for v in ("abc", "", "0")
            )
        ),
        {
            **base,
            "attribute_mapping": {"disabled": [{"attribute": "nsAccountLock", "kind": "equals"}]},
        },
        {**base, "attribute_mapping": {"stable_id": ""}},
        {**base, "attribute_mapping": {"email": ""}},
        {**base, "attribute_mapping": {"username": "uid)(cn=*"}},
        {**base, "attribute_mapping": {"group_members": []}},
        {
            **base,
            "attribute_mapping": {
                "expiry": [{"attribute": "account Expires", "format": "filetime"}]
            },
        },
        {**base, "unknown": 1},
        [1, 2],
    ]
    for body in cases:
        response = client.post("/api/v1/directory/connectors", json=body, headers=auth)
        assert response.status_code == 400, (body, response.json)
        assert response.mimetype == "application/problem+json"
    garbage = client.post("/api/v1/directory/connectors", data=b"\xff{", headers=auth)
    assert garbage.status_code == 400


def test_renaming_a_connector_to_another_connectors_name_is_409_and_changes_nothing(
    client, session, unchanged
):
    """A 500 before (found by tests/security/test_hostile_routes.py): the clash query
    flushed the new name first, into the unique index of (organisation, name)."""
    _, auth = admin_auth(session)
    fields = {
        "server_urls": ["ldap://127.0.0.1:1"],
        "bind_dn": "cn=admin,dc=corp,dc=test",
        "bind_password": "bind-password",
        "base_dn": "ou=people,dc=corp,dc=test",
    }
    for name in ("first", "second"):
        made = client.post(
            "/api/v1/directory/connectors", json={**fields, "name": name}, headers=auth
        )
        assert made.status_code == 201, made.json
    second = made.json["id"]
    unchanged()
    renamed = client.patch(
        f"/api/v1/directory/connectors/{second}", json={"name": " first "}, headers=auth
    )
    assert renamed.status_code == 409, renamed.get_data(as_text=True)
    assert renamed.mimetype == "application/problem+json"
    assert renamed.json["field"] == "name"
    unchanged()


def test_a_team_name_the_team_rule_refuses_is_refused_as_a_group_teams_name(
    client, session, directory
):
    """group_teams names the teams a sync creates: it checks them by the team-name rule
    itself (models.actions.teams.validate_team_name), and refuses what the admin API's team
    create refuses, for the same reason. Before, it had its own 1-to-200 check and took a
    control character or a name 201 characters long in lower case ("İ" is two), and each
    sync then failed to create the team. (NUL is refused before either, by the body guard.)"""
    _, auth = admin_auth(session)
    base = connector_fields(directory)
    for name in ("Eng\tineering", "Eng\x85ineering", "İ" * 101, "Eng\u200bineering", "Eng\u3164"):
        as_team = client.post("/api/v1/teams", json={"name": name}, headers=auth)
        assert as_team.status_code == 400, (name, as_team.json)
        as_group = client.post(
            "/api/v1/directory/connectors",
            json={**base, "group_teams": {"engineering": name}},
            headers=auth,
        )
        assert as_group.status_code == 400, (name, as_group.json)
        assert as_group.mimetype == as_team.mimetype == "application/problem+json"
        assert as_group.json["detail"] == f"group 'engineering': team {as_team.json['detail']}"
    fine = {**base, "group_teams": {"engineering": "İ" * 100}}
    assert client.post("/api/v1/directory/connectors", json=fine, headers=auth).status_code == 201


@pytest.mark.parametrize("mapping", ["group_teams", "group_roles"])
@pytest.mark.parametrize("group", ["Ad\u200bmins", "\u202eAdmins", "Admins\u3164"])
def test_a_group_name_with_an_invisible_character_is_refused_as_a_mapping_key(
    client, session, directory, mapping, group
):
    """A mapping key names the directory's group the sync maps to a team or a role: one with
    a zero-width or bidi character looks like "Admins" in every view and maps another group
    (or none). Refused by the rule of team names (models.text.check_key_name)."""
    _, auth = admin_auth(session)
    value = "ORG_ADMIN" if mapping == "group_roles" else "Admins"
    response = client.post(
        "/api/v1/directory/connectors",
        json={**connector_fields(directory), mapping: {group: value}},
        headers=auth,
    )
    assert response.status_code == 400, response.json
    assert response.mimetype == "application/problem+json"
    assert "invisible" in response.json["detail"]


def test_other_organisations_cannot_see_a_connector(client, session, make_connector):
    connector = make_connector()
    _, auth = admin_auth(session)
    response = client.get(f"/api/v1/directory/connectors/{connector.id}", headers=auth)
    assert response.status_code == 404


def test_quarantine_runs_plans_and_approval_over_the_api(
    client, session, sessions, directory, sync, worker
):
    run = a_run_held_over_the_api(client, session, sessions, directory, sync)
    auth, connector, outcome, cid = run.auth, run.connector, run.outcome, run.connector.id
    runs = client.get(f"/api/v1/directory/connectors/{cid}/runs", headers=auth).json["items"]
    assert [r["status"] for r in runs] == ["quarantined", "succeeded"]
    detail = client.get(f"/api/v1/directory/runs/{outcome.run_id}", headers=auth).json
    assert detail["plan"]["revokes"][0]["email"].startswith("dave@")
    queued = client.post(f"/api/v1/directory/runs/{outcome.run_id}/approve", headers=auth)
    assert queued.status_code == 202 and queued.json["status"] == "approving"
    again = client.post(f"/api/v1/directory/runs/{outcome.run_id}/discard", headers=auth)
    assert again.status_code == 409
    wait_relaying(
        lambda: client.get(queued.headers["Location"], headers=auth).json["status"] == "approved",
        timeout=90,
        what="the worker to apply the approval",
    )
    assert linked_users(sessions, connector)["dave"].status.value == "REVOKED"


def test_sync_request_is_queued_for_the_worker(client, session, sessions, directory):
    _, auth = admin_auth(session)
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    cid = client.post("/api/v1/directory/connectors", json=body, headers=auth).json["id"]
    response = client.post(
        f"/api/v1/directory/connectors/{cid}/sync", json={"dry_run": True}, headers=auth
    )
    assert response.status_code == 202
    with sessions() as s:
        queued = [m.kwargs for m in s.scalars(select(OutboxMessage)) if m.task == "directory.sync"]
        s.rollback()
    assert queued == [
        {"connector_id": cid, "kind": "full", "trigger": "admin@corp.test", "dry_run": True}
    ]
    bad = client.post(
        f"/api/v1/directory/connectors/{cid}/sync", json={"kind": "sometimes"}, headers=auth
    )
    assert bad.status_code == 400


def test_cli_add_test_dry_run_sync_and_approve(session, sessions, settings, directory):
    org = factories.make_org(session)
    session.commit()
    env = settings_env(settings, LDAP_PW=ROOT_PASSWORD)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["ldap", *args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout

    fields = connector_fields(directory)
    run(
        "add",
        "--org",
        org.slug,
        "--name",
        "corp",
        "--url",
        fields["server_urls"][0],
        "--base-dn",
        fields["base_dn"],
        "--bind-dn",
        fields["bind_dn"],
        "--bind-password-env",
        "LDAP_PW",
        "--group-base-dn",
        fields["group_base_dn"],
        "--group-team",
        "engineering=Engineering",
        "--page-size",
        "2",
    )
    assert '"users": 4' in run("test", "--org", org.slug, "--json")
    dry = json.loads(run("sync", "--org", org.slug, "--dry-run", "--json"))
    assert dry["status"] == "planned" and dry["plan_summary"]["create"] == 4
    text = run("sync", "--org", org.slug)
    assert "succeeded" in text and "created 4" in text
    directory.delete(directory.person_dn("dave"))
    quarantined = json.loads(run("sync", "--org", org.slug, "--json", code=4))
    assert quarantined["status"] == "quarantined"
    plan = run("plan", "--org", org.slug, quarantined["id"])
    assert "revoke" in plan and "dave@" in plan
    assert "approved" in run("approve", "--org", org.slug, quarantined["id"])
    assert "approved" in run("runs", "--org", org.slug)
    failing = runner.invoke(
        main, ["ldap", "approve", "--org", org.slug, quarantined["id"]], env=env
    )
    assert failing.exit_code != 0 and "only a quarantined run" in failing.output


def test_a_mapping_saved_before_a_check_that_now_refuses_it_fails_runs_and_can_be_fixed(
    client, session, sessions, directory, sync
):
    """A connector stored with an attribute mapping that the API refuses since 66bd65e
    (`group_members: []`, every group read empty): a sync fails as misconfigured and changes
    nobody, the connection test says why, and an edit puts it right (a 500 before, on the
    sync and on the edit alike: the old mapping did not validate when read)."""
    _, auth = admin_auth(session)
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    cid = client.post("/api/v1/directory/connectors", json=body, headers=auth).json["id"]
    connector = session.get_one(DirectoryConnector, uuid.UUID(cid))
    session.commit()
    assert sync(connector).status == "succeeded"
    people = {name: user.status for name, user in linked_users(sessions, connector).items()}
    with session.begin():
        session.get_one(DirectoryConnector, connector.id).attribute_mapping = {"group_members": []}

    failed = sync(connector)

    assert failed.status == "failed" and "group_members" in (failed.error or ""), failed
    assert {name: user.status for name, user in linked_users(sessions, connector).items()} == (
        people
    )
    with session.begin():
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "directory_sync.failed")
        ).all()
        assert event.after is not None and event.after["error_code"] == "directory_config_error"
    tested = client.post(f"/api/v1/directory/connectors/{cid}/test", headers=auth)
    assert tested.status_code == 200 and tested.json["error_code"] == "directory_config_error"

    fixed = client.patch(
        f"/api/v1/directory/connectors/{cid}", json={"attribute_mapping": {}}, headers=auth
    )

    assert fixed.status_code == 200, fixed.json
    with session.begin():
        session.expire_all()
        assert session.get_one(DirectoryConnector, connector.id).watermark == ""
        reset = select(AuditEvent).where(AuditEvent.action == "directory_connector.watermark_reset")
        assert session.scalars(reset).one().target_id == cid
    assert sync(connector).status == "succeeded"
