"""Renames and moves as directories make them (modrdn, a new superior): the person is the
same by stable id, their memberships follow the new DN, and a renamed group is held."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.directory.approvals import approve_run
from models.entities import AuditEvent, DirectorySyncRun, IdentityLink
from models.enums import SyncKind, UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support import factories

KINDS = [SyncKind.FULL, SyncKind.INCREMENTAL]


@pytest.mark.parametrize("kind", KINDS, ids=["full", "incremental"])
def test_a_renamed_person_keeps_their_identity_and_teams(
    make_connector, sync, sessions, directory, kind
):
    """modrdn uid=bob -> uid=robert into another OU, and the group's member value rewritten
    as a directory's referential integrity does: one user, one link at the new DN (audited
    identity.moved), no team removed and re-added, in the run that sees it and after."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    bob = linked_users(sessions, connector)["bob"]
    directory.add(
        f"ou=moved,{directory.people}", {"objectClass": [b"organizationalUnit"], "ou": [b"moved"]}
    )
    moved = f"uid=robert,ou=moved,{directory.people}"
    directory.move(directory.person_dn("bob"), "uid=robert", f"ou=moved,{directory.people}")
    group = f"cn=engineering,{directory.groups}"
    directory.delete_values(group, "member", directory.person_dn("bob").encode())
    directory.add_values(group, "member", moved.upper().encode())
    for run_kind in (kind, SyncKind.FULL):
        outcome = sync(connector, kind=run_kind)
        assert outcome.status == "succeeded", outcome.error
        plan = get_run(sessions, outcome.run_id).plan
        assert (plan["creates"], plan["revokes"], plan["team_adds"], plan["team_removes"]) == (
            [],
            [],
            [],
            [],
        )
    after = linked_users(sessions, connector)["bob"]
    assert (after.id, after.status) == (bob.id, UserStatus.ACTIVE)
    assert team_members(sessions) == {"alice", "bob", "carol"}
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == bob.id))
        assert link.attributes["dn"] == moved
        moves = s.scalars(select(AuditEvent).where(AuditEvent.action == "identity.moved"))
        assert [m.after["dn"] for m in moves if m.before["dn"] == directory.person_dn("bob")] == [
            moved
        ]


@pytest.mark.parametrize("kind", KINDS, ids=["full", "incremental"])
def test_a_renamed_group_holds_the_run_and_keeps_its_team(
    make_connector, sync, sessions, directory, kind
):
    """A group mapped by its name and renamed (cn=engineering -> cn=eng) returns no members
    for the team: the run waits for an admin, whoever ran it, and nobody leaves the team."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    directory.move(f"cn=engineering,{directory.groups}", "cn=eng")
    outcome = sync(connector, kind=kind)
    assert outcome.status == "quarantined"
    assert "returned no members" in get_run(sessions, outcome.run_id).error
    assert team_members(sessions) == {"alice", "bob", "carol"}


def test_a_person_moved_out_of_the_base_is_gone_and_moved_back_is_the_same(
    make_connector, sync, sessions, directory
):
    """Out of the base is out of the directory for us: a full sync revokes through the
    gates (held at a threshold of 0, then approved); moved back, an
    incremental sync brings back the same user with their team, though no group changed."""
    connector = make_connector(group_teams={"engineering": "Engineering"}, threshold_count=0)
    assert sync(connector).status == "succeeded"
    bob = linked_users(sessions, connector)["bob"]
    directory.move(directory.person_dn("bob"), "uid=bob", directory.groups)
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE
    with sessions() as s:
        run = s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id))
        assert approve_run(s, run=run, actor=factories.SETUP).revoked == 1
        s.commit()
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    directory.move(f"uid=bob,{directory.groups}", "uid=bob", directory.people)
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    after = linked_users(sessions, connector)["bob"]
    assert (after.id, after.status) == (bob.id, UserStatus.ACTIVE)
    assert team_members(sessions) == {"alice", "bob", "carol"}
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    plan = get_run(sessions, outcome.run_id).plan
    assert (plan["team_adds"], plan["team_removes"]) == ([], [])
