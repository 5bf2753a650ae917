"""Team removals and role demotions are gated like revocations: counted, withheld after a read
that cannot prove them, held by their own thresholds, and held when a mapped group comes back
empty."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.actions.directory_connectors import update_connector
from models.directory.approvals import approve_run
from models.entities import AuditEvent, DirectoryConnector, DirectorySyncRun
from models.enums import Role, SyncRunStatus, UserStatus
from models.queries.directory import run_view
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support import factories


def _grouped(make_connector, directory, **overrides):
    return make_connector(
        group_teams={"engineering": "Engineering"},
        group_roles={"admins": "MANAGER"},
        **overrides,
    )


def _change(session, settings, connector, **fields):
    found = session.get_one(DirectoryConnector, connector.id)
    update_connector(
        session,
        connector=found,
        fields=fields,
        bind_password=None,
        settings=settings,
        actor=factories.SETUP,
    )
    session.commit()


def test_a_group_base_on_an_empty_ou_waits_for_an_admin(
    make_connector, sync, sessions, session, settings, directory
):
    connector = _grouped(make_connector, directory)
    assert sync(connector).status == "succeeded"
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["alice"].role is Role.MANAGER
    empty = f"ou=empty,{directory.base}"
    directory.add(empty, {"objectClass": [b"organizationalUnit"], "ou": [b"empty"]})
    _change(session, settings, connector, group_base_dn=empty)

    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert "team Engineering returned no members, though 3 people are in it" in outcome.error
    assert "role MANAGER returned no members, though 1 users hold it" in outcome.error
    assert outcome.summary["team_remove"] == 3 and outcome.summary["demote"] == 1
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["alice"].role is Role.MANAGER

    with sessions() as s:  # an admin who meant it approves
        approve_run(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id)), actor=factories.SETUP
        )
        s.commit()
    assert team_members(sessions) == set()
    assert linked_users(sessions, connector)["alice"].role is Role.USER
    counts = run_view(get_run(sessions, outcome.run_id))["counts"]
    assert (counts["team_removed"], counts["demoted"], counts["revoked"]) == (3, 1, 0)


def test_entries_without_a_stable_id_withhold_team_removals_and_demotions(
    make_connector, sync, sessions, directory
):
    for uid in ("alice", "bob", "carol", "dave"):
        directory.replace(directory.person_dn(uid), "employeeNumber", f"e-{uid}".encode())
    directory.add_values(
        f"cn=admins,{directory.groups}", "member", directory.person_dn("bob").encode()
    )
    connector = _grouped(
        make_connector, directory, attribute_mapping={"stable_id": "employeeNumber"}
    )
    assert sync(connector).status == "succeeded"
    assert linked_users(sessions, connector)["bob"].role is Role.MANAGER
    directory.replace(directory.person_dn("bob"), "employeeNumber")  # hidden, as by an ACL

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["team_remove"] == 0 and outcome.summary["demote"] == 0
    assert outcome.summary["withheld"] == 1
    run = get_run(sessions, outcome.run_id)
    assert run.plan["withheld"] == {"team_remove": 1}  # bob's role is not planned: unread
    assert run.error.startswith("deprovisioning withheld: 1 entries had no stable id")
    assert "also withheld: 1 team_remove" in run.error
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["bob"].role is Role.MANAGER


def test_each_kind_has_its_own_count_threshold(make_connector, sync, sessions, directory):
    connector = _grouped(
        make_connector,
        directory,
        safety={
            "thresholds": {
                "team_remove": {"count": 1, "percent": 100},
                "demote": {"count": 0, "percent": 100},
            }
        },
    )
    sync(connector)
    engineering = f"cn=engineering,{directory.groups}"
    for uid in ("alice", "bob"):
        directory.delete_values(engineering, "member", directory.person_dn(uid).encode())
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert outcome.error == "the plan removes 2 team memberships, more than the threshold of 1"
    assert team_members(sessions) == {"alice", "bob", "carol"}

    directory.add_values(engineering, "member", directory.person_dn("bob").encode())
    directory.add_values(
        f"cn=admins,{directory.groups}", "member", directory.person_dn("carol").encode()
    )
    sync(connector)  # one removal (alice) passes; carol becomes MANAGER
    assert team_members(sessions) == {"bob", "carol"}
    directory.delete_values(
        f"cn=admins,{directory.groups}", "member", directory.person_dn("carol").encode()
    )
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert outcome.error == "the plan demotes 1 users, more than the threshold of 0"
    assert linked_users(sessions, connector)["carol"].role is Role.MANAGER


def test_team_removal_percentage_threshold(make_connector, sync, sessions, directory):
    connector = _grouped(
        make_connector,
        directory,
        safety={"thresholds": {"team_remove": {"count": 100, "percent": 10}}},
    )
    sync(connector)
    directory.delete_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("bob").encode()
    )
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert outcome.error == ("the plan removes 1 of 3 directory team memberships, more than 10%")
    assert get_run(sessions, outcome.run_id).status is SyncRunStatus.QUARANTINED


def test_a_retired_teams_memberships_are_not_counted_as_removals(
    make_connector, sync, sessions, session, settings, directory
):
    connector = _grouped(
        make_connector,
        directory,
        safety={"thresholds": {"team_remove": {"count": 1, "percent": 100}}},
    )
    sync(connector)
    _change(session, settings, connector, group_teams={})  # the admin unmaps the group
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["team_retire"] == 1
    assert team_members(sessions) == set()


def _quarantine_events(sessions, run_id: str) -> list[AuditEvent]:
    with sessions() as s:
        query = select(AuditEvent).where(AuditEvent.action == "directory_sync.quarantined")
        events = [e for e in s.scalars(query) if (e.after or {}).get("run_id") == run_id]
        s.expunge_all()
        s.rollback()
    return events


@pytest.mark.parametrize(
    ("user_filter", "reason"),
    [
        (  # an attribute the server does not have: nobody at all is read
            "(&(objectClass=inetOrgPerson)(objectGUID=*))",
            "the people search returned nobody, though 4 people are linked to this connector",
        ),
        (  # it reads someone, but none of the people linked
            "(uid=nobody-linked)",
            "the people search returned none of the 4 people linked to this connector "
            "(it read 1 entries)",
        ),
    ],
)
def test_a_people_read_that_finds_none_of_the_linked_people_waits_for_an_admin(
    make_connector, sync, sessions, session, settings, directory, user_filter, reason
):
    # Thresholds at 100% and far above the organisation's size: they would let it all through.
    wide_open = {"count": 1000, "percent": 100}
    connector = make_connector(
        safety={"thresholds": {kind: wide_open for kind in ("revoke", "team_remove", "demote")}}
    )
    assert sync(connector).status == "succeeded"
    assert len(linked_users(sessions, connector)) == 4
    if "nobody-linked" in user_filter:
        directory.add_person("nobody-linked")
    _change(session, settings, connector, user_filter=user_filter)

    outcome = sync(connector)
    assert outcome.status == "quarantined", outcome.error
    assert outcome.error == f"{reason} (treated like an empty directory)"
    assert outcome.summary["revoke"] == 4
    assert all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())
    (event,) = _quarantine_events(sessions, outcome.run_id)
    assert event.after["reason"] == outcome.error

    with sessions() as s:  # an admin who meant it approves
        applied = approve_run(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id)), actor=factories.SETUP
        )
        s.commit()
    assert applied.revoked == 4
    assert get_run(sessions, outcome.run_id).status is SyncRunStatus.APPROVED
    users = linked_users(sessions, connector)
    assert {name for name, u in users.items() if u.status is UserStatus.REVOKED} == {
        "alice",
        "bob",
        "carol",
        "dave",
    }
