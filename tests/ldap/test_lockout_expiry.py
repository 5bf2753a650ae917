"""Timed lockouts never revoke; an administrative lock and a passed account expiry do.

The ppolicy lockout is a real one: slapd's ppolicy overlay locks the entry after three wrong
binds and writes `pwdAccountLockedTime` itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ldap
import pytest
from sqlalchemy import select

from connectors.ldap.mapping import mapping_for, parse_generalized_time
from models.entities import AuditEvent, IdentityLink
from models.enums import SyncKind, UserStatus
from tests.ldap.conftest import (
    AD_CONNECTOR,
    Directory,
    ad_filetime,
    as_ad_accounts,
    get_run,
    linked_users,
)

PASSWORD = b"right-password"


def _lockout_policy(directory: Directory) -> str:
    dn = f"cn=lockout,{directory.base}"
    directory.add(
        dn,
        {
            "objectClass": [b"person", b"pwdPolicy"],
            "cn": [b"lockout"],
            "sn": [b"policy"],
            "pwdAttribute": [b"userPassword"],
            "pwdLockout": [b"TRUE"],
            "pwdMaxFailure": [b"3"],
            "pwdLockoutDuration": [b"300"],
        },
    )
    return dn


def _type_wrong_passwords(directory: Directory, dn: str, times: int) -> None:
    for _ in range(times):
        conn = ldap.initialize(directory.slapd.url)
        with pytest.raises(ldap.INVALID_CREDENTIALS):
            conn.simple_bind_s(dn, "wrong")


def _locked_time(directory: Directory, dn: str) -> bytes | None:
    found = directory.conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["pwdAccountLockedTime"])
    values = found[0][1].get("pwdAccountLockedTime")
    return values[0] if values else None


def test_a_ppolicy_lockout_after_wrong_passwords_revokes_nobody(
    make_connector, sync, sessions, directory
):
    policy = _lockout_policy(directory)
    alice = directory.person_dn("alice")
    directory.replace(alice, "userPassword", PASSWORD)
    directory.replace(alice, "pwdPolicySubentry", policy.encode())
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    _type_wrong_passwords(directory, alice, 3)
    locked = _locked_time(directory, alice)
    assert locked is not None and locked != b"000001010000Z"  # slapd locked her, for a time

    for kind in (SyncKind.INCREMENTAL, SyncKind.FULL):
        outcome = sync(connector, kind=kind)
        assert outcome.status == "succeeded", outcome.error
        assert outcome.summary["revoke"] == 0
        assert linked_users(sessions, connector)["alice"].status is UserStatus.ACTIVE

    # An administrator's lock is the one lock that means "disabled".
    directory.replace(alice, "pwdAccountLockedTime", b"000001010000Z")
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.summary["revoke"] == 1
    assert linked_users(sessions, connector)["alice"].status is UserStatus.REVOKED


def test_a_timed_lockout_does_not_keep_a_new_person_out(make_connector, sync, sessions, directory):
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"20261204101500Z")
    directory.replace(directory.person_dn("carol"), "pwdAccountLockedTime", b"000001010000Z")
    connector = make_connector()
    sync(connector)
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "dave"]


def _days(moment: datetime) -> bytes:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)).days).encode()


def _generalized(moment: datetime) -> bytes:
    return moment.strftime("%Y%m%d%H%M%SZ").encode()


def test_openldap_expiry_revokes_when_passed_and_is_stored_when_ahead(
    make_connector, sync, sessions, directory
):
    connector = make_connector()
    sync(connector)
    now = datetime.now(UTC)
    bob, carol, dave = (directory.person_dn(uid) for uid in ("bob", "carol", "dave"))
    directory.add_values(bob, "objectClass", b"shadowAccount")
    directory.replace(bob, "shadowExpire", _days(now - timedelta(days=2)))
    directory.replace(carol, "pwdEndTime", _generalized(now - timedelta(hours=1)))
    ahead = (now + timedelta(days=30)).replace(microsecond=0)
    directory.replace(dave, "pwdEndTime", _generalized(ahead))

    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert users["bob"].status is users["carol"].status is UserStatus.REVOKED
    assert users["dave"].status is UserStatus.ACTIVE
    reasons = {
        r["email"].split("@")[0]: r["reason"]
        for r in get_run(sessions, outcome.run_id).plan["revokes"]
    }
    assert reasons["bob"].startswith("account expired on ")
    assert reasons["carol"].startswith("account expired on ")
    stored = ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == users["dave"].id))
        assert link is not None and link.attributes["access_ends_at"] == stored
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "identity.access_end_changed",
                AuditEvent.target_id == str(users["dave"].id),
            )
        ).all()
        assert [e.after for e in events] == [{"access_ends_at": stored}]
        s.rollback()
    # A later change elsewhere moves the watermark past dave's entry, which is not read again.
    directory.replace(directory.person_dn("alice"), "cn", b"Alice L.")
    sync(connector, kind=SyncKind.INCREMENTAL)
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == users["dave"].id))
        assert link is not None
        # The date passes with no change to the entry: as if a month went by.
        link.attributes = {**link.attributes, "access_ends_at": "2000-01-01T00:00:00Z"}
        s.commit()
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.summary["read"] == 1 and outcome.summary["revoke"] == 1
    assert get_run(sessions, outcome.run_id).plan["revokes"][0]["reason"] == (
        "account expired on 2000-01-01T00:00:00Z"
    )
    assert linked_users(sessions, connector)["dave"].status is UserStatus.REVOKED


def test_an_expiry_ahead_is_stored_on_import_and_a_passed_one_is_not_imported(
    make_connector, sync, sessions, directory
):
    now = datetime.now(UTC)
    ahead = (now + timedelta(days=3)).replace(microsecond=0)
    directory.replace(directory.person_dn("alice"), "pwdEndTime", _generalized(ahead))
    directory.replace(directory.person_dn("bob"), "pwdEndTime", b"20200101000000Z")
    connector = make_connector()
    sync(connector)
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "carol", "dave"]
    with sessions() as s:
        link = s.scalar(select(IdentityLink).where(IdentityLink.user_id == users["alice"].id))
        assert link is not None
        assert link.attributes["access_ends_at"] == ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
        s.rollback()


def test_active_directory_lockout_and_expiry(make_connector, sync, sessions, directory):
    as_ad_accounts(directory, ("alice", "bob", "carol", "dave"))
    connector = make_connector(**AD_CONNECTOR)
    sync(connector)
    assert len(linked_users(sessions, connector)) == 4
    now = datetime.now(UTC)
    directory.replace(directory.person_dn("alice"), "lockoutTime", ad_filetime(now))
    directory.replace(directory.person_dn("bob"), "accountExpires", ad_filetime(now - timedelta(1)))
    directory.replace(directory.person_dn("carol"), "userAccountControl", b"530")  # 512|16|2
    directory.replace(directory.person_dn("dave"), "userAccountControl", b"528")  # 512|LOCKOUT
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert users["alice"].status is users["dave"].status is UserStatus.ACTIVE
    assert users["bob"].status is users["carol"].status is UserStatus.REVOKED


@pytest.mark.parametrize(
    "marker",
    [
        {"attribute": "pwdAccountLockedTime", "kind": "present"},
        {"attribute": "lockoutTime", "kind": "present"},
        {"attribute": "userAccountControl", "kind": "bitmask", "value": "0x12"},
    ],
)
def test_a_lockout_cannot_be_configured_as_disabled(marker):
    with pytest.raises(ValueError, match="lockout"):
        mapping_for("openldap", {"disabled": [marker]})


def test_freeipa_principal_expiration(make_connector, sync, sessions, directory):
    for uid in ("alice", "bob", "carol", "dave"):
        dn = directory.person_dn(uid)
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "ipaUniqueID", f"ipa-{uid}".encode())
    now = datetime.now(UTC)
    directory.replace(
        directory.person_dn("bob"), "krbPrincipalExpiration", _generalized(now - timedelta(1))
    )
    directory.replace(
        directory.person_dn("carol"), "krbPrincipalExpiration", _generalized(now + timedelta(9))
    )
    connector = make_connector(preset="freeipa")
    sync(connector)
    assert sorted(linked_users(sessions, connector)) == ["alice", "carol", "dave"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20270131000000Z", datetime(2027, 1, 31, tzinfo=UTC)),
        ("20270131083000.5Z", datetime(2027, 1, 31, 8, 30, tzinfo=UTC)),
        ("2027013110+0200", datetime(2027, 1, 31, 8, tzinfo=UTC)),
        ("202701310000-0130", datetime(2027, 1, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_generalized_time_forms(text, expected):
    assert parse_generalized_time(text) == expected


@pytest.mark.parametrize(
    "text", ["2027", "20270131", "20270131000000", "tomorrow", "2027013100000Z"]
)
def test_a_bad_generalized_time_is_refused(text):
    with pytest.raises(ValueError):
        parse_generalized_time(text)
