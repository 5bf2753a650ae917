"""What a test and a plan report: nothing said to be fine when nothing usable was found, and
no work planned that can never be done."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main
from models.directory import connection_check
from models.entities import Organisation
from tests.ldap.conftest import get_run, linked_users
from tests.support.worker import settings_env


def _slug(sessions, connector) -> str:
    with sessions() as s:
        slug = s.get_one(Organisation, connector.organisation_id).slug
        s.rollback()
        return slug


def test_ldap_test_under_the_ad_preset_on_openldap_says_it_found_nobody(
    make_connector, sessions, settings
):
    connector = make_connector(preset="active_directory")
    result = connection_check.test_connection(connector, settings)
    assert result["users"] == 0 and not result["ok"], result
    assert result["error_code"] == "no_people"
    assert "(&(objectCategory=person)(objectClass=user))" in result["error"]
    assert "active_directory" in result["error"]
    cli = CliRunner(env=settings_env(settings)).invoke(
        main, ["ldap", "test", "--org", _slug(sessions, connector)]
    )
    assert cli.exit_code == 6, cli.output
    assert "no_people" in cli.output


def test_ldap_test_says_when_the_people_found_do_not_map(make_connector, settings):
    """Entries match, but without objectGUID nobody could be imported."""
    connector = make_connector(preset="active_directory", user_filter="(objectClass=inetOrgPerson)")
    result = connection_check.test_connection(connector, settings)
    assert result["users"] == 4 and not result["ok"], result
    assert result["error_code"] == "unmappable"
    assert "objectGUID" in result["error"] and "uid=" in result["error"]


def test_an_unchanged_full_sync_plans_no_team_add_for_entries_never_imported(
    make_connector, sync, sessions, directory
):
    locked = directory.add_person(
        "erin",
        extra={"pwdAccountLockedTime": [b"000001010000Z"]},  # an administrative lock
    )
    directory.add_values(f"cn=engineering,{directory.groups}", "member", locked.encode())
    connector = make_connector(group_teams={"engineering": "Engineering"})
    first = sync(connector)
    assert first.status == "succeeded", first.error
    assert "erin" not in linked_users(sessions, connector)
    assert first.summary["team_add"] == 3  # alice, bob and carol (through platform)
    again = sync(connector)
    assert again.summary["team_add"] == 0, get_run(sessions, again.run_id).plan["team_adds"]
    assert again.summary["skipped"] == 1
