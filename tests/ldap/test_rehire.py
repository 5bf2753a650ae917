"""A person deleted and re-created in the directory (same email, new entryUUID) is relinked to
the new entry, not locked out; a per-connector policy can turn that off."""

from __future__ import annotations

from sqlalchemy import select

from models.actions import lifecycle
from models.entities import (
    AuditEvent,
    IdentityLink,
    Organisation,
    RevocationReview,
    User,
    VirtualApiKey,
)
from models.enums import ReviewCause, Role, SyncKind, UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support import factories


def _recreate(directory, uid: str = "alice") -> str:
    """Delete the entry and add it again: same DN and email, a new entryUUID. The groups keep
    naming the DN (slapd has no referential integrity overlay here)."""
    dn = directory.person_dn(uid)
    old = directory.entry_uuid(dn)
    directory.delete(dn)
    directory.add_person(uid, name="Alice Liddell")
    assert directory.entry_uuid(dn) != old
    return directory.entry_uuid(dn)


def _link_of(sessions, user_id) -> IdentityLink:
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == user_id))
        s.expunge_all()
        s.rollback()
    assert link is not None
    return link


def test_a_recreated_entry_is_relinked_with_teams_role_and_keys_kept(
    make_connector, sync, sessions, directory
):
    connector = make_connector(
        group_teams={"engineering": "Engineering"}, group_roles={"admins": "MANAGER"}
    )
    sync(connector)
    alice = linked_users(sessions, connector)["alice"]
    assert alice.role is Role.MANAGER
    with sessions() as s:
        org = s.get_one(Organisation, connector.organisation_id)
        key = factories.make_key(s, org, owner=s.get_one(User, alice.id))
        s.commit()
    new_id = _recreate(directory)

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["relink"] == 1
    assert outcome.summary["revoke"] == outcome.summary["create"] == 0
    assert outcome.summary["team_remove"] == outcome.summary["team_add"] == 0
    assert outcome.summary["role"] == 0 and outcome.summary["errors"] == 0
    after = linked_users(sessions, connector)["alice"]
    assert after.id == alice.id and after.status is UserStatus.ACTIVE and after.role is Role.MANAGER
    link = _link_of(sessions, alice.id)
    assert link.external_id == new_id and link.deleted_at is None
    assert team_members(sessions) == {"alice", "bob", "carol"}
    with sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "identity.relinked"))
        assert event is not None and event.after["external_id"] == new_id
        review = s.scalar(
            select(RevocationReview).where(RevocationReview.cause == ReviewCause.IDENTITY_CHANGED)
        )
        assert review is not None and review.user_id == alice.id
        assert review.context["external_id"] == new_id
        assert not s.get_one(VirtualApiKey, key.id).revoked
        s.rollback()
    assert sync(connector).summary["relink"] == 0  # settled


def test_a_person_already_locked_out_by_a_deletion_comes_back(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    sync(connector)
    dn = directory.person_dn("alice")
    directory.delete(dn)
    sync(connector)
    alice = linked_users(sessions, connector)["alice"]
    assert alice.status is UserStatus.REVOKED
    directory.add_person("alice", name="Alice Liddell")

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["relink"] == 1 and outcome.summary["errors"] == 0
    run = get_run(sessions, outcome.run_id)
    assert run.reactivated_count == 1
    after = linked_users(sessions, connector)["alice"]
    assert after.id == alice.id and after.status is UserStatus.ACTIVE
    assert _link_of(sessions, alice.id).external_id == directory.entry_uuid(dn)


def test_an_incremental_sync_waits_for_a_full_one_to_relink(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    sync(connector)
    new_id = _recreate(directory)
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.summary["relink"] == 0 and outcome.summary["create"] == 0
    errors = get_run(sessions, outcome.run_id).plan["errors"]
    assert ["complete full sync" in e["message"] for e in errors] == [True]
    assert linked_users(sessions, connector)["alice"].status is UserStatus.ACTIVE
    assert sync(connector).summary["relink"] == 1
    alice = linked_users(sessions, connector)["alice"]
    assert _link_of(sessions, alice.id).external_id == new_id


def test_the_report_policy_leaves_the_rehire_to_an_admin(make_connector, sync, sessions, directory):
    connector = make_connector(
        safety={"rehire": "report", "thresholds": {"revoke": {"count": 50, "percent": 100}}}
    )
    sync(connector)
    alice = linked_users(sessions, connector)["alice"]
    _recreate(directory)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["relink"] == 0 and outcome.summary["revoke"] == 1
    errors = get_run(sessions, outcome.run_id).plan["errors"]
    assert ["relinking re-hires is off" in e["message"] for e in errors] == [True]
    assert linked_users(sessions, connector)["alice"].status is UserStatus.REVOKED
    assert _link_of(sessions, alice.id).deleted_at is not None


def test_a_revoked_person_linked_by_email_gets_no_role_from_the_groups(
    make_connector, sync, session, sessions, directory
):
    """Alice was revoked by an admin before the directory knew her; the directory links her
    entry by email (she is in the admins group, mapped to MANAGER): the link is made, but no
    role is granted to a revoked person, as the directory's role changes and SCIM's group
    roles skip revoked people. Before, the link made her a MANAGER while revoked."""
    connector = make_connector(group_roles={"admins": "MANAGER"})
    org = session.get_one(Organisation, connector.organisation_id)
    alice = factories.make_user(session, org, email=f"alice@{directory.domain}")
    lifecycle.revoke(session, user=alice, actor=factories.SETUP, reason="left")
    session.commit()

    outcome = sync(connector)

    assert outcome.status == "succeeded", outcome.error
    linked = linked_users(sessions, connector)["alice"]
    assert (linked.id, linked.status, linked.role) == (alice.id, UserStatus.REVOKED, Role.USER)
