"""Full sync against a real slapd: import, update, move, disable, delete, reactivate, teams."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.lifecycle import revoke
from models.entities import AuditEvent, IdentityLink, OutboxMessage, Team, User
from models.enums import Role, Source, UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support import factories


def test_first_sync_imports_everyone_with_links_and_audit(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert users["alice"].name == "Alice Liddell"
    assert all(u.status is UserStatus.ACTIVE for u in users.values())
    run = get_run(sessions, outcome.run_id)
    assert (run.read_count, run.created_count, run.revoked_count) == (4, 4, 0)
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == users["alice"].id))
        assert link.external_id == directory.entry_uuid(directory.person_dn("alice"))
        assert link.attributes["dn"] == directory.person_dn("alice")
        sources = set(
            s.scalars(select(AuditEvent.source).where(AuditEvent.action == "user.created"))
        )
        assert sources == {Source.LDAP}


def test_unchanged_resync_changes_nothing(make_connector, sync, sessions):
    connector = make_connector()
    sync(connector)
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert (run.created_count, run.updated_count, run.unchanged_count) == (0, 0, 4)


def test_name_and_email_changes_are_updates(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    directory.replace(directory.person_dn("bob"), "cn", b"Robert Builder")
    directory.replace(directory.person_dn("bob"), "mail", f"robert@{directory.domain}".encode())
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert run.updated_count == 1
    update = run.plan["updates"][0]
    assert set(update["fields"]) == {"name", "email"}
    users = linked_users(sessions, connector)
    assert users["robert"].name == "Robert Builder"


def test_rename_and_ou_move_keep_the_same_user(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    before = linked_users(sessions, connector)["carol"].id
    directory.add(
        f"ou=moved,{directory.people}", {"objectClass": [b"organizationalUnit"], "ou": [b"moved"]}
    )
    directory.move(directory.person_dn("carol"), "uid=cdanvers", f"ou=moved,{directory.people}")
    outcome = sync(connector)
    assert outcome.status == "succeeded"
    run = get_run(sessions, outcome.run_id)
    assert run.created_count == 0 and run.revoked_count == 0 and run.updated_count == 1
    assert run.plan["updates"][0]["fields"]["dn"][1] == f"uid=cdanvers,ou=moved,{directory.people}"
    after = linked_users(sessions, connector)["carol"]
    assert after.id == before and after.status is UserStatus.ACTIVE


def test_locked_account_is_revoked_and_unlocking_reactivates(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    sync(connector)
    dn = directory.person_dn("dave")
    directory.replace(dn, "pwdAccountLockedTime", b"000001010000Z")
    outcome = sync(connector)
    assert get_run(sessions, outcome.run_id).revoked_count == 1
    assert linked_users(sessions, connector)["dave"].status is UserStatus.REVOKED
    with sessions() as s:
        kinds = [m.task for m in s.scalars(select(OutboxMessage))]
        assert "reviews.open_for_revocation" in kinds
    directory.replace(dn, "pwdAccountLockedTime")
    outcome = sync(connector)
    assert get_run(sessions, outcome.run_id).reactivated_count == 1
    assert linked_users(sessions, connector)["dave"].status is UserStatus.ACTIVE


def test_deleted_entry_is_revoked_and_returning_entry_reactivated(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    sync(connector)
    dn = directory.person_dn("bob")
    directory.move(dn, "uid=bob", f"ou=groups,{directory.base}")  # out of the base: gone for us
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert run.revoked_count == 1
    assert run.plan["revokes"][0]["reason"] == "no longer in the directory"
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    directory.move(f"uid=bob,ou=groups,{directory.base}", "uid=bob", directory.people)
    outcome = sync(connector)
    assert get_run(sessions, outcome.run_id).reactivated_count == 1
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE


def test_a_truly_deleted_entry_is_revoked(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    directory.delete_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("bob").encode()
    )
    directory.delete(directory.person_dn("bob"))
    sync(connector)
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED


def test_admin_revocation_is_not_undone_by_sync(make_connector, sync, sessions, session):
    connector = make_connector()
    sync(connector)
    with sessions() as s:
        user = s.scalar(select(User).where(User.name == "Alice Liddell"))
        revoke(s, user=user, actor=factories.SETUP, reason="left the project")
        s.commit()
    outcome = sync(connector)
    assert get_run(sessions, outcome.run_id).reactivated_count == 0
    assert linked_users(sessions, connector)["alice"].status is UserStatus.REVOKED


def test_existing_user_is_linked_by_email_not_duplicated(
    make_connector, sync, sessions, session, directory
):
    connector = make_connector()
    with sessions() as s:
        org = s.get_one(type(connector), connector.id).organisation_id
        from models.entities import Organisation

        organisation = s.get_one(Organisation, org)
        existing = factories.make_user(
            s, organisation, email=f"ALICE@{directory.domain}", name="Alice (manual)"
        )
        s.commit()
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert len(run.plan["links"]) == 1 and run.created_count == 3
    users = linked_users(sessions, connector)
    assert users["ALICE"].id == existing.id
    assert users["ALICE"].name == "Alice Liddell"


def test_user_managed_by_another_source_is_never_touched(make_connector, sync, sessions, directory):
    from models.actions.identities import provision_user
    from models.actor import Actor
    from models.entities import Organisation

    connector = make_connector()
    with sessions() as s:
        organisation = s.get_one(Organisation, connector.organisation_id)
        scim = provision_user(
            s,
            organisation=organisation,
            source=Source.SCIM,
            external_id="okta-1",
            email=f"carol@{directory.domain}",
            name="Carol (SCIM)",
            actor=Actor(Source.SCIM, "okta"),
        )
        s.commit()
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert any("managed by scim" in e["message"] for e in run.plan["errors"])
    directory.replace(directory.person_dn("carol"), "pwdAccountLockedTime", b"000001010000Z")
    sync(connector)
    with sessions() as s:
        user = s.get_one(User, scim.user.id)
        assert (user.status, user.name) == (UserStatus.ACTIVE, "Carol (SCIM)")
        s.rollback()


def test_groups_become_teams_with_nested_members_and_roles(
    make_connector, sync, sessions, directory
):
    connector = make_connector(
        group_teams={"engineering": "Engineering"},
        group_roles={f"cn=admins,{directory.groups}": "ORG_ADMIN"},
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    with sessions() as s:
        team = s.scalar(select(Team).where(Team.name == "Engineering"))
        members = {m.user.email.split("@")[0]: m for m in team.memberships}
        assert sorted(members) == ["alice", "bob", "carol"]  # carol through the nested group
        assert {m.source for m in members.values()} == {Source.LDAP}
        s.rollback()
    users = linked_users(sessions, connector)
    assert users["alice"].role is Role.ORG_ADMIN and users["bob"].role is Role.USER
    # bob leaves the group; a membership an admin added by hand stays
    with sessions() as s:
        team = s.scalar(select(Team).where(Team.name == "Engineering"))
        dave = s.get_one(User, users["dave"].id)
        factories.add_member(s, team, dave)
        s.commit()
    directory.delete_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("bob").encode()
    )
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert [r["external_id"] for r in run.plan["team_removes"]] == [
        directory.entry_uuid(directory.person_dn("bob"))
    ]
    assert team_members(sessions) == {"alice", "carol", "dave"}


def test_group_cycles_do_not_loop(make_connector, sync, sessions, directory):
    directory.add_values(
        f"cn=platform,{directory.groups}", "member", f"cn=engineering,{directory.groups}".encode()
    )
    connector = make_connector(group_teams={"platform": "Platform"})
    outcome = sync(connector)
    assert outcome.status == "succeeded"
    with sessions() as s:
        team = s.scalar(select(Team).where(Team.name == "Platform"))
        assert len(team.memberships) == 3
        s.rollback()
