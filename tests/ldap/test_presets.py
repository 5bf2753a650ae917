"""The FreeIPA and Active Directory presets against slapd (their attributes are in its schema)."""

from __future__ import annotations

import uuid

import pytest

from connectors.ldap.mapping import (
    Group,
    escape_dn_value,
    escape_filter_value,
    expand_groups,
    map_person,
    mapping_for,
)
from models.enums import UserStatus
from tests.ldap.conftest import linked_users


def test_active_directory_preset(make_connector, sync, sessions, directory):
    guids = {}
    for uid, control in (("alice", b"512"), ("bob", b"514")):  # 514 = NORMAL | ACCOUNTDISABLE
        dn = directory.person_dn(uid)
        guids[uid] = uuid.uuid4()
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "objectGUID", guids[uid].bytes_le)
        directory.replace(dn, "userAccountControl", control)
        directory.replace(dn, "sAMAccountName", uid.upper().encode())
    connector = make_connector(
        preset="active_directory",
        attribute_mapping={"change_attribute": "modifyTimestamp", "change_kind": "timestamp"},
        user_filter="(&(objectClass=inetOrgPerson)(objectGUID=*))",
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice"]  # bob is disabled and is not created
    directory.replace(directory.person_dn("alice"), "userAccountControl", b"514")
    sync(connector)
    assert linked_users(sessions, connector)["alice"].status is UserStatus.REVOKED
    with sessions() as s:
        from sqlalchemy import select

        from models.entities import IdentityLink

        ids = set(
            s.scalars(
                select(IdentityLink.external_id).where(IdentityLink.connector_id == connector.id)
            )
        )
        s.rollback()
    assert ids == {str(guids["alice"])}


def test_freeipa_preset(make_connector, sync, sessions, directory):
    for uid in ("alice", "bob", "carol", "dave"):
        dn = directory.person_dn(uid)
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "ipaUniqueID", f"ipa-{uid}".encode())
    directory.replace(directory.person_dn("carol"), "nsAccountLock", b"TRUE")
    connector = make_connector(preset="freeipa")
    sync(connector)
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "dave"]


def test_test_action_binds_counts_and_maps_a_sample(make_connector, settings):
    from models.directory.connection_check import test_connection

    connector = make_connector()
    result = test_connection(connector, settings)
    assert result["ok"] and result["users"] == 4 and result["groups"] == 3
    assert result["sample"]["email"].startswith("alice@")
    broken = make_connector(name="broken", password="nope")
    failed = test_connection(broken, settings)
    assert not failed["ok"] and failed["error_code"] == "directory_auth_failed"


def test_escaping():
    assert escape_filter_value("a*(b)\\c\x00") == "a\\2a\\28b\\29\\5cc\\00"
    assert escape_dn_value('Smith, John+x="y"') == 'Smith\\, John\\+x\\=\\"y\\"'


def test_nested_groups_expand_with_cycles():
    groups = {
        "a": Group(dn="a", key="a", name="a", members=["b", "u1"], change=""),
        "b": Group(dn="b", key="b", name="b", members=["a", "u2"], change=""),
    }
    assert expand_groups(groups) == {"a": {"u1", "u2"}, "b": {"u1", "u2"}}


def test_mapping_overrides_are_validated():
    assert mapping_for("active_directory").stable_id == "objectGUID"
    with pytest.raises(ValueError, match="unknown preset"):
        mapping_for("novell")
    with pytest.raises(ValueError):
        mapping_for("openldap", {"stable_idd": "x"})


def _ad_entry(**extra: list[bytes]) -> dict[str, list[bytes]]:
    return {
        "objectGUID": [uuid.uuid4().bytes_le],
        "sAMAccountName": [b"ALICE"],
        "mail": [b"alice@example.com"],
        "userAccountControl": [b"512"],
        "uSNChanged": [b"7"],
        **extra,
    }


def test_an_active_directory_expiry_hidden_from_the_reader_is_unknown_not_never():
    """AD writes accountExpires on every account (0 or 2^63-1 for never): without it the
    end date is unknown (None, kept as it is), where a set one is a date and never is "".
    Other directories' expiry attributes are optional: absent there means no end."""
    ad = mapping_for("active_directory")
    dn = "CN=Alice,DC=corp"
    assert map_person(dn, _ad_entry(), ad).access_ends_at is None
    never = _ad_entry(accountExpires=[str(0x7FFFFFFFFFFFFFFF).encode()])
    assert map_person(dn, never, ad).access_ends_at == ""
    dated = _ad_entry(accountExpires=[b"134000000000000000"])
    assert map_person(dn, dated, ad).access_ends_at == "2025-08-18T14:13:20Z"

    freeipa = mapping_for("freeipa")
    entry = {
        "ipaUniqueID": [b"1f0e"],
        "uid": [b"alice"],
        "mail": [b"alice@example.com"],
        "modifyTimestamp": [b"20260101000000Z"],
    }
    assert map_person("uid=alice,dc=corp", entry, freeipa).access_ends_at == ""
