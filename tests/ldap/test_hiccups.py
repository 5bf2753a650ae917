"""Directory hiccups a real slapd produces between two syncs: an ACL change that hides part
of what the bind account read before (entries, a group's `member` values, the base itself),
a base that disappears, an identity that changes under a person. Nobody loses access for a
hiccup: the run fails or waits for an admin, and the next good run converges, cutting off
the real leaver. The ACLs are the shared slapd's (tests/support/slapd.py): what a test marks
is hidden from READER_DN, the connector's bind account here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models.entities import AuditEvent
from models.enums import Role, Source, UserStatus
from tests.ldap.conftest import (
    AD_CONNECTOR,
    ad_filetime,
    as_ad_accounts,
    get_run,
    linked_users,
    team_members,
)
from tests.support.slapd import (
    HIDDEN_FROM_READER,
    LOCK_HIDDEN_FROM_READER,
    MEMBERS_HIDDEN_FROM_READER,
    READER_DN,
    READER_PASSWORD,
)


def _group(directory, name: str, *uids: str) -> str:
    dn = f"cn={name},{directory.groups}"
    members = [directory.person_dn(uid).encode() for uid in uids]
    directory.add(dn, {"objectClass": [b"groupOfNames"], "cn": [name.encode()], "member": members})
    return dn


def _read_by_the_reader(make_connector, **fields):
    return make_connector(bind_dn=READER_DN, password=READER_PASSWORD, **fields)


def test_one_of_a_teams_groups_whose_members_an_acl_hides_holds_the_run(
    make_connector, sync, sessions, directory
):
    """Failed before: Engineering is filled by two groups; an ACL change hides the members of
    contractors (dave) from the bind account. The team did not look emptied (engineering
    still fills it), so dave was removed from it, under the thresholds: a whole group cut
    out of its team by a hiccup. Now the run waits for an admin, and the next run after the
    ACL is fixed changes nothing."""
    contractors = _group(directory, "contractors", "dave")
    connector = _read_by_the_reader(
        make_connector, group_teams={"engineering": "Engineering", "contractors": "Engineering"}
    )
    assert sync(connector).status == "succeeded"
    assert team_members(sessions) == {"alice", "bob", "carol", "dave"}
    directory.replace(contractors, "businessCategory", MEMBERS_HIDDEN_FROM_READER)

    outcome = sync(connector)
    assert outcome.status == "quarantined", outcome
    assert (
        "the group contractors, which fills team Engineering, returned no members, and the "
        "plan removes 1 people still in the directory from that team" in outcome.error
    )
    assert team_members(sessions) == {"alice", "bob", "carol", "dave"}

    directory.replace(contractors, "businessCategory")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert outcome.summary["team_remove"] == 0
    assert team_members(sessions) == {"alice", "bob", "carol", "dave"}


def test_a_leaver_locked_in_a_run_held_for_a_hiccup_is_cut_off_at_once(
    make_connector, sync, sessions, directory
):
    """Failed before: an ACL hiding the contractors' members holds the run; in the same run
    an administrator locked bob's account. bob kept his access until an admin decided the
    held plan. Now bob is revoked at once (audited, listed in the stored plan as
    revoked_while_held), dave's place in the team still waits, and the next run after the
    ACL is fixed changes nothing more."""
    contractors = _group(directory, "contractors", "dave")
    connector = _read_by_the_reader(
        make_connector, group_teams={"engineering": "Engineering", "contractors": "Engineering"}
    )
    assert sync(connector).status == "succeeded"
    directory.replace(contractors, "businessCategory", MEMBERS_HIDDEN_FROM_READER)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")

    held = sync(connector)
    assert held.status == "quarantined", held
    assert (held.summary["revoked_while_held"], held.summary["revoke"]) == (1, 0)
    bob = linked_users(sessions, connector)["bob"]
    assert bob.status is UserStatus.REVOKED
    assert "dave" in team_members(sessions)
    stored = get_run(sessions, held.run_id).plan
    assert [item["email"] for item in stored["revoked_while_held"]] == [bob.email]
    with sessions() as s:
        revoked = s.scalars(
            select(AuditEvent.source).where(
                AuditEvent.action == "user.revoked", AuditEvent.target_id == str(bob.id)
            )
        ).all()
    assert revoked == [Source.LDAP]

    directory.replace(contractors, "businessCategory")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert (outcome.summary["revoke"], outcome.summary["team_remove"]) == (0, 0)
    assert "dave" in team_members(sessions)


def test_many_leavers_in_a_held_run_wait_with_it(make_connector, sync, sessions, directory):
    """Guard: leavers revoked while a run is held are few by the revoke threshold; more (a
    wrong disabled marker reads everyone locked) wait with the rest of the plan."""
    contractors = _group(directory, "contractors", "dave")
    connector = _read_by_the_reader(
        make_connector,
        group_teams={"engineering": "Engineering", "contractors": "Engineering"},
        safety={"thresholds": {"revoke": {"count": 1, "percent": 100}}},
    )
    assert sync(connector).status == "succeeded"
    directory.replace(contractors, "businessCategory", MEMBERS_HIDDEN_FROM_READER)
    for uid in ("bob", "carol"):
        directory.replace(directory.person_dn(uid), "pwdAccountLockedTime", b"000001010000Z")

    held = sync(connector)
    assert held.status == "quarantined", held
    assert (held.summary["revoked_while_held"], held.summary["revoke"]) == (0, 2)
    people = linked_users(sessions, connector)
    assert {people[uid].status for uid in ("bob", "carol")} == {UserStatus.ACTIVE}


def test_one_of_a_roles_groups_whose_members_an_acl_hides_holds_the_run(
    make_connector, sync, sessions, directory
):
    """Failed before: MANAGER comes from admins (alice) and leads (bob); the leads' members
    hidden by an ACL demoted bob, though alice kept the role filled."""
    leads = _group(directory, "leads", "bob")
    connector = _read_by_the_reader(
        make_connector,
        group_roles={"admins": "MANAGER", "leads": "MANAGER"},
        safety={"thresholds": {"demote": {"percent": 100}}},
    )
    assert sync(connector).status == "succeeded"
    assert linked_users(sessions, connector)["bob"].role is Role.MANAGER
    directory.replace(leads, "businessCategory", MEMBERS_HIDDEN_FROM_READER)

    outcome = sync(connector)
    assert outcome.status == "quarantined", outcome
    assert "the group leads, which gives role MANAGER, returned no members" in outcome.error
    assert linked_users(sessions, connector)["bob"].role is Role.MANAGER


def test_a_group_that_really_lost_a_leaver_still_applies(make_connector, sync, sessions, directory):
    """Guard: a group emptied because its only member left revokes the leaver at once (the
    rule above counts only people still in the directory)."""
    _group(directory, "contractors", "dave")
    connector = _read_by_the_reader(
        make_connector, group_teams={"engineering": "Engineering", "contractors": "Engineering"}
    )
    assert sync(connector).status == "succeeded"
    directory.delete(f"cn=contractors,{directory.groups}")
    directory.delete(directory.person_dn("dave"))

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert linked_users(sessions, connector)["dave"].status is UserStatus.REVOKED
    assert team_members(sessions) == {"alice", "bob", "carol"}


def test_groups_whose_members_an_acl_hides_wait_for_an_admin(
    make_connector, sync, sessions, directory
):
    """Guard: the members of every mapped group hidden (the ACL on `member` changed for the
    whole group tree): the team and the role look emptied, the run waits, nobody moves."""
    connector = _read_by_the_reader(
        make_connector,
        group_teams={"engineering": "Engineering"},
        group_roles={"admins": "MANAGER"},
    )
    assert sync(connector).status == "succeeded"
    for name in ("engineering", "platform", "admins"):
        directory.replace(
            f"cn={name},{directory.groups}", "businessCategory", MEMBERS_HIDDEN_FROM_READER
        )

    outcome = sync(connector)
    assert outcome.status == "quarantined", outcome
    assert "team Engineering returned no members, though 3 people are in it" in outcome.error
    assert "role MANAGER returned no members, though 1 users hold it" in outcome.error
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["alice"].role is Role.MANAGER


def test_people_an_acl_hides_then_a_base_that_disappears_then_the_fix(
    make_connector, sync, sessions, directory
):
    """Guard: bob leaves; then an ACL change hides every person from the bind account (the
    run reads nobody: held), then the people OU itself (noSuchObject: the run fails as a
    configuration error). Nobody is revoked meanwhile; once the ACL is fixed, the next run
    cuts off bob, the real leaver, and only him."""
    connector = _read_by_the_reader(make_connector)
    assert sync(connector).status == "succeeded"
    directory.delete(directory.person_dn("bob"))
    for uid in ("alice", "carol", "dave"):
        directory.replace(directory.person_dn(uid), "businessCategory", HIDDEN_FROM_READER)

    held = sync(connector)
    assert held.status == "quarantined", held
    assert "the people search returned nobody" in held.error
    directory.replace(directory.people, "businessCategory", HIDDEN_FROM_READER)
    failed = sync(connector)
    assert failed.status == "failed", failed
    assert get_run(sessions, failed.run_id).error_code == "directory_config_error"
    assert "No such object" in failed.error
    assert all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())

    for dn in (directory.people, *map(directory.person_dn, ("alice", "carol", "dave"))):
        directory.replace(dn, "businessCategory")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    statuses = {n: u.status for n, u in linked_users(sessions, connector).items()}
    assert statuses == {
        "alice": UserStatus.ACTIVE,
        "bob": UserStatus.REVOKED,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
    }


def test_a_nested_group_whose_members_an_acl_hides_holds_the_run(
    make_connector, sync, sessions, directory
):
    """Failed before: platform (carol) is nested in engineering, the group mapped to
    Engineering; an ACL hides platform's members. engineering still names alice and bob, so
    carol was removed from the team, under the thresholds."""
    connector = _read_by_the_reader(make_connector, group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    assert team_members(sessions) == {"alice", "bob", "carol"}
    platform = f"cn=platform,{directory.groups}"
    directory.replace(platform, "businessCategory", MEMBERS_HIDDEN_FROM_READER)

    outcome = sync(connector)
    assert outcome.status == "quarantined", outcome
    assert (
        "the group platform, which fills team Engineering, returned no members, and the "
        "plan removes 1 people still in the directory from that team" in outcome.error
    )
    assert team_members(sessions) == {"alice", "bob", "carol"}


def test_an_active_directory_rename_with_a_new_mail_is_one_person(
    make_connector, sync, sessions, directory
):
    """Guard: bob renamed on Active Directory (new RDN, sAMAccountName and mail at once) is
    the same objectGUID: one update of the same user, no revocation and no create."""
    as_ad_accounts(directory, ("alice", "bob", "carol", "dave"))
    connector = make_connector(**AD_CONNECTOR)
    assert sync(connector).status == "succeeded"
    before = linked_users(sessions, connector)["bob"].id
    dn = directory.person_dn("bob")
    directory.replace(dn, "mail", f"robert@{directory.domain}".encode())
    directory.replace(dn, "sAMAccountName", b"ROBERT")
    directory.move(dn, "uid=robert")

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    summary = outcome.summary
    assert (summary["update"], summary["revoke"], summary["create"]) == (1, 0, 0)
    robert = linked_users(sessions, connector)["robert"]
    assert robert.id == before and robert.status is UserStatus.ACTIVE
    assert sorted(linked_users(sessions, connector)) == ["alice", "carol", "dave", "robert"]


def test_a_group_base_that_disappears_fails_the_run_and_keeps_every_membership(
    make_connector, sync, sessions, directory
):
    """Guard: the groups' OU renamed under the connector (noSuchObject on the group search):
    the run fails as a configuration error before planning anything, so no team loses its
    members and no role is dropped; renamed back, the next run changes nothing."""
    connector = _read_by_the_reader(
        make_connector,
        group_teams={"engineering": "Engineering"},
        group_roles={"admins": "MANAGER"},
    )
    assert sync(connector).status == "succeeded"
    directory.move(directory.groups, "ou=teams")

    failed = sync(connector)
    assert failed.status == "failed", failed
    assert get_run(sessions, failed.run_id).error_code == "directory_config_error"
    assert team_members(sessions) == {"alice", "bob", "carol"}
    assert linked_users(sessions, connector)["alice"].role is Role.MANAGER

    directory.move(f"ou=teams,{directory.base}", "ou=groups")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert (outcome.summary["team_remove"], outcome.summary["demote"]) == (0, 0)


def test_locks_an_acl_hides_bring_no_leaver_back(make_connector, sync, sessions, directory):
    """Failed before: carol and dave are disabled (ppolicy's administrative lock) and revoked;
    then an ACL change hides pwdAccountLockedTime from the bind account. A lock that cannot
    be read looks like no lock, so both were reactivated, their keys restored: leavers back
    in by a hiccup. Reactivations now have their threshold, as revocations do (default 50
    or 10% of the linked users): the run waits for an admin, and once the ACL is fixed the
    next run keeps them out."""
    connector = _read_by_the_reader(
        make_connector, safety={"thresholds": {"revoke": {"count": 50, "percent": 100}}}
    )
    assert sync(connector).status == "succeeded"
    for uid in ("carol", "dave"):
        directory.replace(directory.person_dn(uid), "pwdAccountLockedTime", b"000001010000Z")
    assert sync(connector).summary["revoke"] == 2
    for uid in ("carol", "dave"):
        directory.replace(directory.person_dn(uid), "businessCategory", LOCK_HIDDEN_FROM_READER)

    held = sync(connector)
    assert held.status == "quarantined", held
    assert held.error == "the plan reactivates 2 of 4 linked users, more than 10%"
    out = {
        n for n, u in linked_users(sessions, connector).items() if u.status is UserStatus.REVOKED
    }
    assert out == {"carol", "dave"}

    for uid in ("carol", "dave"):
        directory.replace(directory.person_dn(uid), "businessCategory")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert outcome.summary["reactivate"] == 0
    out = {
        n for n, u in linked_users(sessions, connector).items() if u.status is UserStatus.REVOKED
    }
    assert out == {"carol", "dave"}


def test_two_people_whose_mails_are_swapped_keep_who_they_are(
    make_connector, sync, sessions, directory
):
    """Failed before: an admin corrects two addresses given the wrong way round (alice's
    entry gets bob@, bob's alice@). Each update was refused as "a user with email ...
    already exists", the other person still holding it, at every sync: their alerts kept
    going to each other's mailbox. Now both addresses move at once, each person audited once
    with their old and new address, and the next run finds nothing to change."""
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    ids = {n: u.id for n, u in linked_users(sessions, connector).items()}
    mail = {uid: f"{uid}@{directory.domain}" for uid in ("alice", "bob")}
    directory.replace(directory.person_dn("alice"), "mail", mail["bob"].encode())
    directory.replace(directory.person_dn("bob"), "mail", mail["alice"].encode())

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    run = get_run(sessions, outcome.run_id)
    assert run.plan.get("apply_errors", []) == [] and run.updated_count == 2
    users = linked_users(sessions, connector)
    assert (users["bob"].id, users["alice"].id) == (ids["alice"], ids["bob"])
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "user.updated",
                AuditEvent.target_id.in_([str(ids["alice"]), str(ids["bob"])]),
            )
        ).all()
        changes = {(e.before["email"], e.after["email"]) for e in events}
        s.rollback()
    assert changes == {(mail["alice"], mail["bob"]), (mail["bob"], mail["alice"])}
    assert len(events) == 2
    assert sync(connector).summary["update"] == 0


def test_an_address_one_person_gives_up_another_takes_in_the_same_run(
    make_connector, sync, sessions, directory
):
    """Failed before when bob's change came after alice's: bob becomes robert@ and alice
    takes bob@ in one run; both apply whatever order the entries come in."""
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    directory.replace(directory.person_dn("bob"), "mail", f"robert@{directory.domain}".encode())
    directory.replace(directory.person_dn("alice"), "mail", f"bob@{directory.domain}".encode())

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert get_run(sessions, outcome.run_id).plan.get("apply_errors", []) == []
    names = {u.name: n for n, u in linked_users(sessions, connector).items()}
    assert (names["Alice Liddell"], names["Bob Builder"]) == ("bob", "robert")


def test_a_group_that_was_always_empty_holds_no_routine_team_move(
    make_connector, sync, sessions, directory
):
    """Failed with the rule above before it compared with the last applied run: interns,
    nested in engineering, has never shown the bind account a member (an empty placeholder
    group, common on Active Directory). bob leaving engineering for another department is
    a routine removal, applied at once, not held because interns is empty."""
    interns = _group(directory, "interns", "dave")
    directory.replace(interns, "businessCategory", MEMBERS_HIDDEN_FROM_READER)
    directory.add_values(f"cn=engineering,{directory.groups}", "member", interns.encode())
    connector = _read_by_the_reader(make_connector, group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    assert team_members(sessions) == {"alice", "bob", "carol"}
    directory.delete_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("bob").encode()
    )

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert team_members(sessions) == {"alice", "carol"}


def test_a_joiner_given_an_address_a_colleague_gives_up_is_told_so_and_joins_next(
    make_connector, sync, sessions, directory
):
    """bob becomes robert@ and a new entry, bob2, gets bob@ in the same read. bob still
    holds bob@ until this run changes him, so bob2 joins at the next sync. Failed before:
    bob2 was reported as "email ... is used by more than one directory entry", which no
    entry was, sending the admin after a duplicate that does not exist."""
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    directory.replace(directory.person_dn("bob"), "mail", f"robert@{directory.domain}".encode())
    directory.add_person("bob2", name="Bob Two", mail=f"bob@{directory.domain}")

    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    errors = get_run(sessions, outcome.run_id).plan["errors"]
    assert [e["message"] for e in errors] == [
        f"bob@{directory.domain} is the address the user of {directory.person_dn('bob')} "
        "gives up in this run; this entry is imported at the next sync"
    ]
    assert sync(connector).summary["create"] == 1
    names = {u.name: n for n, u in linked_users(sessions, connector).items()}
    assert (names["Bob Builder"], names["Bob Two"]) == ("robert", "bob")


def _ends(moment: datetime) -> bytes:
    """pwdEndTime's generalized time."""
    return moment.strftime("%Y%m%d%H%M%SZ").encode()


def _end_dates(sessions, connector) -> dict[str, datetime | None]:
    return {n: u.access_ends_at for n, u in linked_users(sessions, connector).items()}


def test_end_dates_an_acl_hides_are_kept(make_connector, sync, sessions, directory):
    """Failed before: alice, bob and carol are contractors whose access ends in a month
    (pwdEndTime); an ACL change hides their expiry from the bind account. An expiry that
    cannot be read looks like none, so the sync cleared all three end dates and they would
    have kept access past their contracts. Clearing or postponing end dates now has its own
    threshold (default 50 or 10% of the linked users): the run waits, the dates stay, and
    once the ACL is fixed the next run changes nothing."""
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    contractors = ("alice", "bob", "carol")
    for uid in contractors:
        directory.replace(directory.person_dn(uid), "pwdEndTime", _ends(ahead))
    connector = _read_by_the_reader(make_connector, safety={})
    assert sync(connector).status == "succeeded"
    assert [_end_dates(sessions, connector)[uid] for uid in contractors] == [ahead] * 3
    _hiding_their_expiry_holds_the_run(sync, sessions, directory, connector, contractors)


def test_one_end_date_extended_or_removed_still_applies(make_connector, sync, sessions, directory):
    """Guard (passed before): a renewed contract moves one person's end date later, another's
    end date is removed; each is under the thresholds and applies at once."""
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    for uid in ("alice", "bob"):
        directory.replace(directory.person_dn(uid), "pwdEndTime", _ends(ahead))
    connector = _read_by_the_reader(make_connector)
    assert sync(connector).status == "succeeded"

    renewed = ahead + timedelta(days=180)
    directory.replace(directory.person_dn("alice"), "pwdEndTime", _ends(renewed))
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert _end_dates(sessions, connector)["alice"] == renewed

    directory.replace(directory.person_dn("bob"), "pwdEndTime")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert _end_dates(sessions, connector)["bob"] is None


def test_active_directory_end_dates_an_acl_hides_are_kept(
    make_connector, sync, sessions, directory
):
    """Active Directory writes accountExpires on every account (0 or 2^63-1 for never), so
    one the bind account cannot read is unknown, not "never ends". alice, bob and carol's
    accountExpires falls in a month; an ACL change hides it from the reader for alice alone,
    under every threshold (they are lifted here): her date stays, the run changes nothing.
    Before, it read as no end date and kept her past her contract. Hidden for all three,
    the run changes nothing either: the end_date_clear threshold is not what saves them."""
    everyone, contractors = ("alice", "bob", "carol", "dave"), ("alice", "bob", "carol")
    as_ad_accounts(directory, everyone)
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    for uid in contractors:
        directory.replace(directory.person_dn(uid), "accountExpires", ad_filetime(ahead))
    lifted = {"count": 10_000_000, "percent": 100}
    connector = _read_by_the_reader(
        make_connector, **AD_CONNECTOR, safety={"thresholds": {"end_date_clear": lifted}}
    )
    assert sync(connector).status == "succeeded"
    dated = _end_dates(sessions, connector)
    assert [dated[uid] for uid in contractors] == [ahead] * 3

    for hidden in (("alice",), contractors):
        for uid in hidden:
            directory.replace(directory.person_dn(uid), "businessCategory", LOCK_HIDDEN_FROM_READER)
        outcome = sync(connector)
        assert outcome.status == "succeeded", outcome
        assert outcome.summary["update"] == 0, outcome.summary
        assert _end_dates(sessions, connector) == dated


def _hiding_their_expiry_holds_the_run(sync, sessions, directory, connector, contractors):
    """The contractors' expiry hidden from the reader: the run is held by end_date_clear and
    their dates stay; the ACL fixed, the next run changes nothing."""
    dated = _end_dates(sessions, connector)
    for uid in contractors:
        directory.replace(directory.person_dn(uid), "businessCategory", LOCK_HIDDEN_FROM_READER)

    held = sync(connector)
    assert held.status == "quarantined", held
    assert held.error == (
        "the plan clears or postpones the end dates of 3 of 4 linked users, more than 10%"
    )
    assert held.summary["end_date_clear"] == 3
    assert _end_dates(sessions, connector) == dated

    for uid in contractors:
        directory.replace(directory.person_dn(uid), "businessCategory")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    assert outcome.summary["update"] == 0
    assert _end_dates(sessions, connector) == dated
