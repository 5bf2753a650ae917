"""What real Active Directory and OpenLDAP directories do that a sync must read right:
userAccountControl values beyond ACCOUNTDISABLE, accountExpires at and near "never", an
attribute the bind account cannot read, several mail values, dangling and cyclic group
members, a connection lost in the middle of the people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ldap
import pytest
from sqlalchemy import select

from connectors.ldap import mapping as mapping_module
from connectors.ldap.client import DirectoryClient, map_error
from connectors.ldap.mapping import PersonReader, mapping_for
from models.entities import Organisation, Team
from models.enums import UserStatus
from tests.ldap.conftest import (
    AD_CONNECTOR,
    ad_filetime,
    as_ad_accounts,
    get_run,
    linked_users,
    team_members,
)
from tests.support import factories


@pytest.mark.parametrize(
    ("control", "status"),
    [
        (b"-2147483646", UserStatus.REVOKED),  # 0x80000002 read as a signed 32-bit integer
        (b"-2147482112", UserStatus.ACTIVE),  # 0x80000600: no ACCOUNTDISABLE
        (b"4294967810", UserStatus.REVOKED),  # 0x100000202: wider than 32 bits, bit 0x2 set
        (b"66048", UserStatus.ACTIVE),  # NORMAL | DONT_EXPIRE_PASSWORD
        (b"528", UserStatus.ACTIVE),  # NORMAL | LOCKOUT
        (b"514", UserStatus.REVOKED),  # NORMAL | ACCOUNTDISABLE (guard)
        (b"66050", UserStatus.REVOKED),  # NORMAL | DONT_EXPIRE_PASSWORD | ACCOUNTDISABLE (guard)
        (b"512", UserStatus.ACTIVE),  # NORMAL (guard)
    ],
)
def test_user_account_control_values(make_connector, sync, sessions, directory, control, status):
    as_ad_accounts(directory, ("alice",))
    connector = make_connector(**AD_CONNECTOR)
    sync(connector)
    directory.replace(directory.person_dn("alice"), "userAccountControl", control)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert linked_users(sessions, connector)["alice"].status is status


def test_a_bitmask_marker_parses_its_mask_once_not_per_entry(directory, monkeypatch):
    """A userAccountControl mask is parsed when the mapping is made: reading accounts
    parses each flags word and never the mask again (once per entry and value before)."""
    as_ad_accounts(directory, ("alice", "bob", "carol", "dave"))
    directory.replace(directory.person_dn("bob"), "userAccountControl", b"514")
    mapping = mapping_for(
        "active_directory",
        {"disabled": [{"attribute": "userAccountControl", "kind": "bitmask", "value": "0x2"}]},
    )
    entries = directory.conn.search_s(
        directory.people, ldap.SCOPE_ONELEVEL, "(objectGUID=*)", mapping.user_attributes()
    )
    parsed: list[str] = []

    def counted_int(value: Any, *base: int) -> int:
        if base and value == "0x2":
            parsed.append(value)
        return int(value, *base)

    monkeypatch.setattr(mapping_module, "int", counted_int, raising=False)
    reader = PersonReader(mapping)
    people = [reader.person(dn, attrs) for dn, attrs in entries]
    disabled = {person.username: person.disabled for person in people}
    assert disabled == {"ALICE": False, "BOB": True, "CAROL": False, "DAVE": False}
    assert parsed == []


def test_an_unreadable_user_account_control_changes_nobody(
    make_connector, sync, sessions, directory
):
    """An ACL change that hides userAccountControl must not reactivate the disabled."""
    as_ad_accounts(directory, ("alice", "bob"))
    connector = make_connector(**AD_CONNECTOR)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "userAccountControl", b"514")
    sync(connector)
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    for uid in ("alice", "bob"):
        directory.replace(directory.person_dn(uid), "userAccountControl")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert users["bob"].status is UserStatus.REVOKED
    assert users["alice"].status is UserStatus.ACTIVE
    errors = get_run(sessions, outcome.run_id).plan["errors"]
    assert sorted(e["dn"] for e in errors) == sorted(
        directory.person_dn(uid) for uid in ("alice", "bob")
    )
    assert all("userAccountControl" in e["message"] for e in errors)


def test_a_flags_word_that_is_not_a_number_changes_nobody(
    make_connector, sync, sessions, directory
):
    """slapd's userAccountControl is an INTEGER and refuses text, so a bitmask marker on a
    string attribute (employeeType) stands in for a proxy or virtual directory giving one."""
    marker = {"attribute": "employeeType", "kind": "bitmask", "value": "2"}
    connector = make_connector(attribute_mapping={"disabled": [marker]})
    for uid in ("alice", "bob", "carol", "dave"):
        directory.replace(directory.person_dn(uid), "employeeType", b"512")
    sync(connector)
    directory.replace(directory.person_dn("bob"), "employeeType", b"514")
    sync(connector)
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    directory.replace(directory.person_dn("bob"), "employeeType", b"disabled")
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    errors = get_run(sessions, outcome.run_id).plan["errors"]
    assert [e["dn"] for e in errors] == [directory.person_dn("bob")]
    assert "employeeType is not an integer" in errors[0]["message"]


def _alice_active_until(sync, sessions, connector) -> datetime | None:
    """Sync with no entry error: alice is active, and her access ends then (None: never)."""
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).plan["errors"] == []
    alice = linked_users(sessions, connector)["alice"]
    assert alice.status is UserStatus.ACTIVE
    stored = alice.access_ends_at
    return stored.replace(tzinfo=UTC) if stored else None


@pytest.mark.parametrize(
    ("expires", "ends"),
    [
        (b"0", None),
        (b"9223372036854775807", None),
        (ad_filetime(datetime(2999, 12, 31, tzinfo=UTC)), datetime(2999, 12, 31, tzinfo=UTC)),
        (ad_filetime(datetime(9999, 12, 30, tzinfo=UTC)), datetime(9999, 12, 30, tzinfo=UTC)),
        (b"9223372036854775806", None),  # year 30828: past any date we can hold, so never
        (b"5300000000000000000", None),  # about year 18400
    ],
)
def test_account_expires_never_and_far_ahead(
    make_connector, sync, sessions, directory, expires, ends
):
    as_ad_accounts(directory, ("alice",))
    directory.replace(directory.person_dn("alice"), "accountExpires", expires)
    connector = make_connector(**AD_CONNECTOR)
    assert _alice_active_until(sync, sessions, connector) == ends


@pytest.mark.parametrize(
    ("days", "ends"),
    [
        (b"0", None),
        (b"-1", None),
        (b"99999", datetime(2243, 10, 16, tzinfo=UTC)),  # a common stand-in for "never"
        (b"99999999", None),  # past any date we can hold, so never
    ],
)
def test_shadow_expire_never_and_far_ahead(make_connector, sync, sessions, directory, days, ends):
    directory.add_values(directory.person_dn("alice"), "objectClass", b"shadowAccount")
    directory.replace(directory.person_dn("alice"), "shadowExpire", days)
    connector = make_connector()
    assert _alice_active_until(sync, sessions, connector) == ends


def test_a_second_mail_value_does_not_change_the_email(make_connector, sync, sessions, directory):
    """mail is multi-valued on OpenLDAP and the order of values is not a promise: an alias
    given first, or mail rewritten in another case or with spaces, keeps the user's email."""
    connector = make_connector()
    sync(connector)
    alice = directory.person_dn("alice")
    email = linked_users(sessions, connector)["alice"].email
    directory.replace(alice, "mail", f"ali@{directory.domain}".encode(), email.encode())
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).plan["updates"] == []
    assert linked_users(sessions, connector)["alice"].email == email
    directory.replace(alice, "mail", f"  {email.upper()} ".encode())
    outcome = sync(connector)
    assert get_run(sessions, outcome.run_id).plan["updates"] == []
    users = linked_users(sessions, connector)
    assert users["alice"].email == email and users["alice"].status is UserStatus.ACTIVE
    directory.replace(alice, "mail", f"ali@{directory.domain}".encode())  # the old one gone
    outcome = sync(connector)
    assert linked_users(sessions, connector)["ali"].email == f"ali@{directory.domain}"


def test_group_members_that_are_gone_or_groups_in_a_cycle(
    make_connector, sync, sessions, directory
):
    """Without the refint overlay a deleted person stays a member of their groups; a group
    may list itself or a group that lists it back. Neither fails the run or moves anyone else."""
    groups = directory.groups
    directory.add_values(f"cn=platform,{groups}", "member", f"cn=engineering,{groups}".encode())
    directory.add_values(f"cn=platform,{groups}", "member", f"cn=platform,{groups}".encode())
    directory.add_values(
        f"cn=engineering,{groups}", "member", f"uid=ghost,{directory.people}".encode()
    )
    connector = make_connector(group_teams={"engineering": "Engineering", "platform": "Platform"})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert team_members(sessions) == team_members(sessions, "Platform") == {"alice", "bob", "carol"}
    directory.delete(directory.person_dn("carol"))  # still listed in cn=platform
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    plan = get_run(sessions, outcome.run_id).plan
    assert plan["errors"] == []
    assert [r["email"].split("@")[0] for r in plan["revokes"]] == ["carol"]
    assert linked_users(sessions, connector)["carol"].status is UserStatus.REVOKED
    assert team_members(sessions) == team_members(sessions, "Platform") == {"alice", "bob"}


@pytest.mark.parametrize(
    "fault",
    [ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"}), ldap.TIMEOUT()],
    ids=["server_down", "timeout"],
)
def test_a_connection_lost_in_the_middle_of_the_people_revokes_nobody(
    make_connector, sync, sessions, directory, monkeypatch, fault
):
    """Stand-in: the shared slapd cannot be stopped between two pages of one search, so the
    third page's answer is python-ldap's own error for a dropped or silent server, mapped as
    the client maps it. Half the people read must not read as the other half gone."""
    connector = make_connector(page_size=1)
    sync(connector)
    directory.delete(directory.person_dn("bob"))
    receive = DirectoryClient._receive
    pages: list[str] = []

    def dropped(self: DirectoryClient, msgid: int, base: str, filterstr: str, **kw: Any) -> Any:
        if "inetOrgPerson" in filterstr:
            pages.append(filterstr)
            if len(pages) == 3:
                raise map_error(fault, doing=f"searching {base!r}")
        return receive(self, msgid, base, filterstr, **kw)

    monkeypatch.setattr(DirectoryClient, "_receive", dropped)
    outcome = sync(connector)
    assert outcome.status == "failed"
    run = get_run(sessions, outcome.run_id)
    assert run.error_code == "directory_unavailable", (run.error_code, run.error)
    users = linked_users(sessions, connector)
    assert {uid: user.status for uid, user in users.items()} == dict.fromkeys(
        ("alice", "bob", "carol", "dave"), UserStatus.ACTIVE
    )


def test_a_group_named_in_nfd_is_the_team_its_composed_name_maps(
    make_connector, sync, sessions, session, directory
):
    """macOS and some LDAP servers send "Café" decomposed ("e" and U+0301). A directory group
    so named is found by the mapping's composed key, and a mapping to the decomposed team
    name reaches the team an IdP created with the composed one (connectors.name_keys): one
    team, not a second that looks the same."""
    nfc, nfd = "Caf\u00e9", "Cafe\u0301"
    directory.add(
        f"cn={nfd},{directory.groups}",
        {
            "objectClass": [b"groupOfNames"],
            "cn": [nfd.encode()],
            "member": [directory.person_dn("alice").encode()],
        },
    )
    connector = make_connector(group_teams={nfc: nfd})
    org = session.get_one(Organisation, connector.organisation_id)
    factories.make_team(session, org, nfc)  # as SCIM named it
    session.commit()
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    with sessions() as s:
        names = s.scalars(select(Team.name).where(Team.organisation_id == org.id)).all()
        s.rollback()
    assert names == [nfc]
    assert team_members(sessions, nfc) == {"alice"}
