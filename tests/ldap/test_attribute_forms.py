"""Attributes as servers return them: with options (`mail;lang-en`, RFC 4512 section 2.5)
and names in another case than the mapping gives."""

from __future__ import annotations

import ldap
import pytest

from models.enums import UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members


def test_an_email_held_only_with_an_option_is_the_email(make_connector, sync, sessions, directory):
    """A value of `mail;lang-en` is a value of mail (an option makes a subtype): asked for
    mail, the server returns it under that description, and the person has an email."""
    bob = directory.person_dn("bob")
    email = f"bob@{directory.domain}".encode()
    directory.conn.modify_s(
        bob, [(ldap.MOD_DELETE, "mail", None), (ldap.MOD_ADD, "mail;lang-en", [email])]
    )
    connector = make_connector()
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).plan["errors"] == []
    users = linked_users(sessions, connector)
    assert users["bob"].status is UserStatus.ACTIVE
    # the plain value, once there, is the one read; the tagged one is not a change
    directory.add_values(bob, "mail", email)
    outcome = sync(connector)
    plan = get_run(sessions, outcome.run_id).plan
    assert (plan["errors"], plan["updates"]) == ([], [])


def test_attribute_names_in_any_case(make_connector, sync, sessions, directory):
    connector = make_connector(
        attribute_mapping={
            "email": "MAIL",
            "username": "UID",
            "name": ["CN"],
            "stable_id": "ENTRYUUID",
        }
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert users["alice"].name == "Alice Liddell"


def test_a_member_username_held_only_with_an_option_is_a_member(
    make_connector, sync, sessions, directory
):
    """memberUid values under a description with options (`memberUid;lang-en`, a subtype
    the server returns when memberUid is asked for) name members as plain ones do."""
    group = f"cn=builders,{directory.groups}"
    directory.add(
        group,
        {
            "objectClass": [b"posixGroup"],
            "cn": [b"builders"],
            "gidNumber": [b"5000"],
            "memberUid": [b"alice"],
            "memberUid;lang-en": [b"bob"],
        },
    )
    directory.add(
        f"cn=tagged,{directory.groups}",
        {
            "objectClass": [b"posixGroup"],
            "cn": [b"tagged"],
            "gidNumber": [b"5001"],
            "memberUid;lang-en": [b"carol"],
        },
    )
    connector = make_connector(
        group_teams={"builders": "Builders", "tagged": "Tagged"},
        attribute_mapping={
            "group_filter": "(objectClass=posixGroup)",
            "group_members": ["memberUid"],
        },
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert team_members(sessions, "Builders") == {"alice", "bob"}
    assert team_members(sessions, "Tagged") == {"carol"}


def test_an_email_still_held_under_an_option_keeps_the_user(
    make_connector, sync, sessions, directory
):
    """Every value of mail counts, those under a description with options too: a linked
    user whose email moved to `mail;lang-de` while an alias took the plain `mail` keeps it,
    as they would among the plain values."""
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    alice = directory.person_dn("alice")
    email = linked_users(sessions, connector)["alice"].email
    directory.conn.modify_s(
        alice,
        [
            (ldap.MOD_REPLACE, "mail", [f"ali@{directory.domain}".encode()]),
            (ldap.MOD_ADD, "mail;lang-de", [email.encode()]),
        ],
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert get_run(sessions, outcome.run_id).plan["updates"] == []
    assert linked_users(sessions, connector)["alice"].email == email


@pytest.mark.parametrize("added", [("lang-en", "lang-de"), ("lang-de", "lang-en")])
def test_the_email_held_only_under_options_is_the_first_option_in_order(
    make_connector, sync, sessions, directory, added
):
    """An entry holding mail only under several options: the email is the first value of the
    description whose options sort first (`mail;lang-de`), whichever the server lists first
    (it keeps the order they were added in)."""
    bob = directory.person_dn("bob")
    changes = [(ldap.MOD_DELETE, "mail", None)]
    for option in added:
        changes.append(
            (ldap.MOD_ADD, f"mail;{option}", [f"bob.{option}@{directory.domain}".encode()])
        )
    directory.conn.modify_s(bob, changes)
    connector = make_connector()
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert "bob.lang-de" in linked_users(sessions, connector)
