"""A connector's thresholds and policies, changed through the admin API and the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models.entities import AuditEvent, DirectoryConnector
from models.enums import Role
from tests.support import factories
from tests.support.worker import settings_env

DEFAULTS = {
    "revoke": {"count": 50, "percent": 10},
    "team_remove": {"count": 100, "percent": 10},
    "demote": {"count": 10, "percent": 10},
    "reactivate": {"count": 50, "percent": 10},
    "end_date_clear": {"count": 50, "percent": 10},
}


def _auth(session, connector):
    from models.entities import Organisation

    org = session.get_one(Organisation, connector.organisation_id)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="admin@corp.test")
    token = factories.admin_token(session, org, admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def _stored(sessions, connector) -> dict:
    with sessions() as s:
        safety = dict(s.get_one(DirectoryConnector, connector.id).safety)
        s.rollback()
    return safety


def test_thresholds_are_shown_and_changed_one_field_at_a_time(
    client, session, sessions, make_connector
):
    connector = make_connector(safety={})
    auth = _auth(session, connector)
    url = f"/api/v1/directory/connectors/{connector.id}"
    shown = client.get(url, headers=auth).json["safety"]
    assert shown == {"thresholds": DEFAULTS, "rehire": "relink"}
    patched = client.patch(
        url, json={"safety": {"thresholds": {"team_remove": {"count": 5}}}}, headers=auth
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["safety"]["thresholds"] == {
        **DEFAULTS,
        "team_remove": {"count": 5, "percent": 10},
    }
    with sessions() as s:
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "directory_connector.updated")
            .order_by(AuditEvent.occurred_at.desc())
        ).first()
        assert event is not None
        assert event.before["safety"]["thresholds"]["team_remove"]["count"] == 100
        assert event.after["safety"]["thresholds"]["team_remove"]["count"] == 5
        s.rollback()


def test_bad_thresholds_are_a_400_and_change_nothing(client, session, sessions, make_connector):
    connector = make_connector(safety={})
    auth = _auth(session, connector)
    url = f"/api/v1/directory/connectors/{connector.id}"
    before = _stored(sessions, connector)
    cases = [
        {"thresholds": {"revoke": {"count": -1}}},
        {"thresholds": {"revoke": {"percent": 101}}},
        {"thresholds": {"revoke": {"count": "5"}}},
        {"thresholds": {"revoke": {"count": True}}},
        {"thresholds": {"revoke": {"count": 1.5}}},
        {"thresholds": {"nuke": {"count": 1}}},
        {"thresholds": {"end_date_clear": {"percent": 101}}},
        {"thresholds": {"revoke": {"limit": 1}}},
        {"thresholds": []},
        {"something": 1},
        {"rehire": "never"},
        {"rehire": None},
        [1],
        "strict",
    ]
    for safety in cases:
        response = client.patch(url, json={"safety": safety}, headers=auth)
        assert response.status_code == 400, (safety, response.json)
        assert response.mimetype == "application/problem+json"
        assert _stored(sessions, connector) == before
    response = client.patch(
        url, json={"safety": {"thresholds": {"demote": {"percent": 200}}}}, headers=auth
    )
    assert "safety.thresholds.demote.percent" in response.json["detail"]


def test_cli_shows_and_changes_thresholds(session, sessions, settings, make_connector):
    connector = make_connector(safety={})
    from models.entities import Organisation

    slug = session.get_one(Organisation, connector.organisation_id).slug
    env = settings_env(settings)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["ldap", "safety", "--org", slug, *args], env=env)

    shown = run("--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["thresholds"] == DEFAULTS
    changed = run("--threshold", "demote.count=3", "--threshold", "revoke.percent=25")
    assert changed.exit_code == 0, changed.output
    assert "demote         count        3" in changed.stdout
    stored = _stored(sessions, connector)["thresholds"]
    assert stored["demote"] == {"count": 3, "percent": 10}
    assert stored["revoke"] == {"count": 50, "percent": 25}
    assert run("--threshold", "end_date_clear.count=7").exit_code == 0
    stored = _stored(sessions, connector)["thresholds"]
    assert stored["end_date_clear"] == {"count": 7, "percent": 10}
    assert run("--rehire", "report").exit_code == 0
    assert _stored(sessions, connector)["rehire"] == "report"
    assert run("--rehire", "sometimes").exit_code != 0
    assert _stored(sessions, connector)["rehire"] == "report"
    for bad in ("demote.count=x", "demote=3", "revoke.percent=150", "nuke.count=1"):
        result = run("--threshold", bad)
        assert result.exit_code != 0 and "Traceback" not in result.output, (bad, result.output)
        assert _stored(sessions, connector)["thresholds"] == stored
    assert "percent" in run("--threshold", "revoke.percent=150").output
