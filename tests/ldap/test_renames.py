"""Renames and moves as directories make them (modrdn, a new superior): the person is the
same by stable id, their memberships follow the new DN, and a renamed group is held."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.actions.directory_connectors import update_connector
from models.directory.apply import RENAME_SOURCE_UNMAPPED, RENAME_TARGET_MAPPED
from models.directory.approvals import approve_run
from models.entities import AuditEvent, DirectoryConnector, DirectorySyncRun, IdentityLink
from models.enums import Role, SyncKind, UserStatus
from tests.ldap.conftest import AD_CONNECTOR, as_ad_accounts, get_run, linked_users, team_members
from tests.support import factories
from worker import directory_sync

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
def test_a_renamed_group_keeps_its_team_by_its_stable_id(
    make_connector, sync, sessions, directory, kind
):
    """A group mapped by its name and renamed (cn=engineering -> cn=eng, its entryUUID the
    same): the run goes through, nobody leaves or rejoins the team, the mapping now names
    the group as the directory does (audited), and a new group given the old name takes
    nobody into the team."""
    connector = make_connector(
        group_teams={"engineering": "Engineering"}, group_roles={"admins": "ORG_ADMIN"}
    )
    assert sync(connector).status == "succeeded"
    group = f"cn=engineering,{directory.groups}"
    group_id = directory.entry_uuid(group)
    admins_id = directory.entry_uuid(f"cn=admins,{directory.groups}")
    directory.move(group, "cn=eng")
    directory.move(f"cn=admins,{directory.groups}", "cn=administrators")
    directory.add(
        group,
        {
            "objectClass": [b"groupOfNames"],
            "cn": [b"engineering"],
            "member": [directory.person_dn("dave").encode()],
        },
    )
    for run_kind in (kind, SyncKind.FULL):
        outcome = sync(connector, kind=run_kind)
        assert outcome.status == "succeeded", outcome.error
        plan = get_run(sessions, outcome.run_id).plan
        assert (plan["team_adds"], plan["team_removes"], plan["roles"]) == ([], [], [])
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["alice"].role is Role.ORG_ADMIN
    with sessions() as s:
        stored = s.get_one(DirectoryConnector, connector.id)
        assert (stored.group_teams, stored.group_roles) == (
            {"eng": "Engineering"},
            {"administrators": "ORG_ADMIN"},
        )
        renames = s.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "directory_connector.group_renamed",
            )
        )
        assert sorted((e.before["group"], e.after["group"], e.after["id"]) for e in renames) == [
            ("admins", "administrators", admins_id),
            ("engineering", "eng", group_id),
        ]
        s.rollback()


def test_a_group_mapped_by_dn_and_moved_keeps_its_team(make_connector, sync, sessions, directory):
    """Mapped by its DN, renamed and moved to another OU: the mapping follows to the new DN."""
    group = f"cn=engineering,{directory.groups}"
    connector = make_connector(group_teams={group: "Engineering"})
    assert sync(connector).status == "succeeded"
    directory.add(
        f"ou=teams,{directory.groups}", {"objectClass": [b"organizationalUnit"], "ou": [b"teams"]}
    )
    directory.move(group, "cn=eng", f"ou=teams,{directory.groups}")
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    plan = get_run(sessions, outcome.run_id).plan
    assert (plan["team_adds"], plan["team_removes"]) == ([], [])
    assert team_members(sessions) == {"alice", "bob", "carol"}
    with sessions() as s:
        stored = s.get_one(DirectoryConnector, connector.id)
        assert stored.group_teams == {f"cn=eng,ou=teams,{directory.groups}": "Engineering"}
        s.rollback()


@pytest.mark.parametrize("kind", KINDS, ids=["full", "incremental"])
def test_a_group_renamed_before_its_id_was_kept_holds_the_run(
    make_connector, sync, sessions, directory, kind
):
    """A mapping whose group's stable id is not known yet (kept since the run that first
    matched it; here forgotten, as for a connector last synced before ids were kept): the
    renamed group returns no members for the team, so the run waits for an admin, whoever
    ran it, and nobody leaves the team."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    with sessions() as s:
        s.get_one(DirectoryConnector, connector.id).group_ids = {}
        s.commit()
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


def test_an_active_directory_group_renamed_keeps_its_team_by_its_object_guid(
    make_connector, sync, sessions, directory
):
    """On Active Directory the group's objectGUID (bytes, read as a GUID) is its stable id."""
    as_ad_accounts(directory, ("alice", "bob", "carol", "dave"))
    guid = uuid.uuid4()
    for name, value in (("engineering", guid), ("platform", uuid.uuid4())):
        dn = f"cn={name},{directory.groups}"
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "objectGUID", value.bytes_le)
    connector = make_connector(
        **AD_CONNECTOR,
        group_filter="(objectClass=groupOfNames)",
        group_teams={"engineering": "Engineering"},
    )
    assert sync(connector).status == "succeeded"
    assert team_members(sessions) == {"alice", "bob", "carol"}
    directory.move(f"cn=engineering,{directory.groups}", "cn=Engineering Team")
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    assert team_members(sessions) == {"alice", "bob", "carol"}
    with sessions() as s:
        stored = s.get_one(DirectoryConnector, connector.id)
        assert (stored.group_teams, stored.group_ids) == (
            {"Engineering Team": "Engineering"},
            {"Engineering Team": str(guid)},
        )
        s.rollback()


@pytest.mark.parametrize(
    ("edited", "reason", "kept"),
    [
        (
            {"engineering": "Engineering", "eng": "Platform"},
            RENAME_TARGET_MAPPED,
            {"team": "Platform"},
        ),
        ({"platform": "Engineering"}, RENAME_SOURCE_UNMAPPED, {}),
    ],
    ids=["new-name-mapped", "old-name-unmapped"],
)
def test_a_rename_the_admins_mapping_overtook_is_kept_out_and_audited(
    make_connector, sync, sessions, settings, directory, monkeypatch, edited, reason, kept
):
    """The admin edits the mapping while a sync reads (cn=engineering renamed cn=eng): the
    run does not follow the rename over the admin's mapping, and says so in the trail, since
    its plan names a rename that no group_renamed event follows."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    group_id = directory.entry_uuid(f"cn=engineering,{directory.groups}")
    directory.move(f"cn=engineering,{directory.groups}", "cn=eng")
    real_read = directory_sync.read_full_plan

    def read_then_edit(*args, **kwargs):
        plan = real_read(*args, **kwargs)
        with sessions() as s:
            update_connector(
                s,
                connector=s.get_one(DirectoryConnector, connector.id),
                fields={"group_teams": edited},
                bind_password=None,
                settings=settings,
                actor=factories.SETUP,
            )
            s.commit()
        return plan

    monkeypatch.setattr(directory_sync, "read_full_plan", read_then_edit)

    outcome = sync(connector)

    assert outcome.status == "succeeded", outcome.error
    assert [r["after"] for r in get_run(sessions, outcome.run_id).plan["group_renames"]] == ["eng"]
    with sessions() as s:
        assert s.get_one(DirectoryConnector, connector.id).group_teams == edited
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action.startswith("directory_connector.group_rename"),
            )
        ).all()
        assert [(e.action, e.before, e.after) for e in events] == [
            (
                "directory_connector.group_rename_skipped",
                {"group": "engineering", **({"team": "Engineering"} if kept else {})},
                {
                    "group": "eng",
                    "id": group_id,
                    "dn": f"cn=eng,{directory.groups}",
                    **kept,
                    "reason": reason,
                },
            )
        ]
        s.rollback()


def test_a_group_renamed_to_a_name_mapped_already_is_audited_not_followed(
    make_connector, sync, sessions, directory
):
    """cn=engineering (mapped, bound by its id) renamed cn=eng while "eng" is mapped to
    another team already: the mapping stays as the admin wrote it, and the trail says why
    the rename was not followed (before, the read dropped it without a word)."""
    connector = make_connector(group_teams={"engineering": "Engineering", "eng": "Eng"})
    assert sync(connector).status == "succeeded"
    group_id = directory.entry_uuid(f"cn=engineering,{directory.groups}")
    directory.move(f"cn=engineering,{directory.groups}", "cn=eng")

    outcome = sync(connector)

    assert outcome.status == "succeeded", outcome.error
    with sessions() as s:
        kept = s.get_one(DirectoryConnector, connector.id)
        assert kept.group_teams == {"engineering": "Engineering", "eng": "Eng"}
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action.startswith("directory_connector.group_rename"),
            )
        ).all()
        assert [(e.action, e.before, e.after) for e in events] == [
            (
                "directory_connector.group_rename_skipped",
                {"group": "engineering", "team": "Engineering"},
                {
                    "group": "eng",
                    "id": group_id,
                    "dn": f"cn=eng,{directory.groups}",
                    "team": "Eng",
                    "reason": RENAME_TARGET_MAPPED,
                },
            )
        ]
