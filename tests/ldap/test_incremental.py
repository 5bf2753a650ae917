"""Incremental sync: changed entries and changed groups only; deletions wait for a full sync."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import Team
from models.enums import SyncKind, UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support.sql_events import listening


def test_incremental_reads_only_changes(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    directory.replace(directory.person_dn("bob"), "cn", b"Bobby")
    directory.add_person("erin")
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    run = get_run(sessions, outcome.run_id)
    assert run.kind is SyncKind.INCREMENTAL
    # entries modified in the watermark's own second are read again; never the whole base
    assert 2 <= run.read_count < 6
    assert run.created_count == 1 and run.updated_count == 1
    users = linked_users(sessions, connector)
    assert users["bob"].name == "Bobby" and "erin" in users


def test_incremental_never_deprovisions_missing_entries(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    directory.delete(directory.person_dn("dave"))
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert get_run(sessions, outcome.run_id).revoked_count == 0
    assert linked_users(sessions, connector)["dave"].status is UserStatus.ACTIVE
    sync(connector)  # the full sync finds the deletion
    assert linked_users(sessions, connector)["dave"].status is UserStatus.REVOKED


def test_incremental_disables_and_picks_up_group_changes(make_connector, sync, sessions, directory):
    connector = make_connector(group_teams={"engineering": "Engineering"})
    sync(connector)
    directory.replace(directory.person_dn("alice"), "pwdAccountLockedTime", b"000001010000Z")
    # a group change does not touch dave's own modifyTimestamp
    directory.add_values(
        f"cn=platform,{directory.groups}", "member", directory.person_dn("dave").encode()
    )
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    run = get_run(sessions, outcome.run_id)
    assert run.revoked_count == 1
    assert [a["team"] for a in run.plan["team_adds"]] == ["Engineering"]
    with sessions() as s:
        team = s.scalar(select(Team).where(Team.name == "Engineering"))
        assert "dave" in {m.user.email.split("@")[0] for m in team.memberships}
        s.rollback()


def test_first_incremental_runs_as_full(make_connector, sync, sessions):
    connector = make_connector()
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert get_run(sessions, outcome.run_id).kind is SyncKind.FULL


def test_an_unchanged_incremental_does_not_reread_the_groups(
    make_connector, sync, directory, monkeypatch
):
    """The group written last set the watermark; it must not look changed at every run."""
    from connectors.ldap.client import DirectoryClient

    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).summary["team_add"] == 3
    searched: list[tuple[str, list[str]]] = []
    original = DirectoryClient.paged_search

    def recorded(self, base, filterstr, attrs, **options):
        searched.append((base, list(attrs)))
        return original(self, base, filterstr, attrs, **options)

    monkeypatch.setattr(DirectoryClient, "paged_search", recorded)
    quiet = sync(connector, kind=SyncKind.INCREMENTAL)
    assert quiet.status == "succeeded", quiet.error
    assert [attrs for base, attrs in searched if base == directory.groups] == [["1.1"]]
    directory.add_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("dave").encode()
    )
    searched.clear()
    changed = sync(connector, kind=SyncKind.INCREMENTAL)
    assert changed.summary["team_add"] == 1
    assert len([base for base, _ in searched if base == directory.groups]) == 2


def test_a_new_person_an_unchanged_group_already_lists_joins_its_team(
    make_connector, sync, sessions, directory
):
    """The group named erin before her entry existed (or before she matched the filter):
    it has not changed since, yet the incremental run that creates her reads the groups."""
    directory.add_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("erin").encode()
    )
    connector = make_connector(group_teams={"engineering": "Engineering"})
    sync(connector)
    directory.add_person("erin")
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).created_count == 1
    assert team_members(sessions) == {"alice", "bob", "carol", "erin"}


def test_incremental_loads_its_changed_people_once(
    make_connector, sync, sessions, directory, engine
):
    """With groups mapped and none changed, whether the groups must be read is decided from
    the changed people's users, and the plan compares the people with those same users: one
    load of them (one read of their users by stable id, as models.queries.directory.load_known
    makes it), not one for each; applying the plan locks them in a query of its own."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    directory.replace(directory.person_dn("bob"), "cn", b"Bobby")
    bob = directory.entry_uuid(directory.person_dn("bob"))
    loads: list[str] = []

    def listen(_conn, _cursor, statement, params, _context, _many) -> None:
        known = "CAST(identity_links.user_id AS" in statement and "external_id IN" in statement
        if known and bob in str(params):
            loads.append(statement)

    with listening(engine, before_cursor_execute=listen):
        outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).updated_count == 1
    assert len(loads) == 1, loads
