"""Group members as real directories write them: the member attribute variants, and DNs in
another case, spacing or escaping than the person's own entry (RFC 4514, RFC 4517)."""

from __future__ import annotations

from models.enums import SyncKind
from tests.ldap.conftest import get_run, team_members


def _succeeds(sync, sessions, connector, **kwargs):
    outcome = sync(connector, **kwargs)
    assert outcome.status == "succeeded", outcome.error
    return get_run(sessions, outcome.run_id)


def test_unique_member_with_an_optional_uid_is_the_person(
    make_connector, sync, sessions, directory
):
    """groupOfUniqueNames' uniqueMember is NameAndOptionalUID (RFC 4517 section 3.3.21): a
    DN, optionally followed by `#` and a bit string; the person is the DN before it."""
    group = f"cn=reviewers,{directory.groups}"
    directory.add(
        group,
        {
            "objectClass": [b"groupOfUniqueNames"],
            "cn": [b"reviewers"],
            "uniqueMember": [
                f"{directory.person_dn('alice')}#'0101'B".encode(),
                directory.person_dn("bob").encode(),
            ],
        },
    )
    connector = make_connector(group_teams={"reviewers": "Reviewers"})
    _succeeds(sync, sessions, connector)
    assert team_members(sessions, "Reviewers") == {"alice", "bob"}
    # the same people written with and without the suffix the other way round: no change
    directory.replace(
        group,
        "uniqueMember",
        directory.person_dn("alice").encode(),
        f"{directory.person_dn('bob')}#'1'B".encode(),
    )
    run = _succeeds(sync, sessions, connector)
    assert (run.plan["team_adds"], run.plan["team_removes"]) == ([], [])
    directory.replace(group, "uniqueMember", f"{directory.person_dn('bob')}#'1'B".encode())
    run = _succeeds(sync, sessions, connector, kind=SyncKind.INCREMENTAL)
    assert [r["external_id"] for r in run.plan["team_removes"]] == [
        directory.entry_uuid(directory.person_dn("alice"))
    ]
    assert team_members(sessions, "Reviewers") == {"bob"}


def test_members_written_in_another_case_spacing_or_escaping_match(
    make_connector, sync, sessions, directory
):
    """Membership matches by normalised DN: `UID=ALICE, OU=PEOPLE` is uid=alice,ou=people;
    `cn=Smith\\2C John` is `cn=Smith\\, John`; `cn=Zo\\C3\\AB` is `cn=Zoë`."""
    people = directory.people
    directory.add_person("smith", dn=f"cn=Smith\\, John,{people}", name="Smith, John")
    directory.add_person("zoe", dn=f"cn=Zo\u00eb,{people}", name="Zo\u00eb")
    directory.add_person("plus", dn=f"cn=Ann+sn=Plus,{people}", name="Ann Plus")
    directory.replace(
        f"cn=engineering,{directory.groups}",
        "member",
        directory.person_dn("alice").upper().replace(",", ", ").encode(),
        f"cn=Smith\\2C John,{people}".encode(),
        f"cn=Zo\\C3\\AB,{people}".encode(),
        f"sn=Plus+cn=ann,{people.upper()}".encode(),
    )
    connector = make_connector(group_teams={"engineering": "Engineering"})
    _succeeds(sync, sessions, connector)
    assert team_members(sessions) == {"alice", "smith", "zoe", "plus"}
    run = _succeeds(sync, sessions, connector)
    assert (run.plan["team_adds"], run.plan["team_removes"]) == ([], [])


def test_posix_group_members_by_username(make_connector, sync, sessions, directory):
    """posixGroup's memberUid (RFC 2307) names people by uid, in any case, not by DN; a uid
    nobody has is nobody. Incremental runs read them the same way, and a person moved to
    another OU keeps the team."""
    group = f"cn=builders,{directory.groups}"
    directory.add(
        group,
        {
            "objectClass": [b"posixGroup"],
            "cn": [b"builders"],
            "gidNumber": [b"5000"],
            "memberUid": [b"alice", b"Bob ", b"nobody"],
        },
    )
    connector = make_connector(
        group_teams={"builders": "Builders"},
        attribute_mapping={
            "group_filter": "(objectClass=posixGroup)",
            "group_members": ["memberUid"],
        },
    )
    _succeeds(sync, sessions, connector)
    assert team_members(sessions, "Builders") == {"alice", "bob"}
    directory.replace(group, "memberUid", b"bob", b"carol")
    directory.add(
        f"ou=moved,{directory.people}", {"objectClass": [b"organizationalUnit"], "ou": [b"moved"]}
    )
    directory.move(directory.person_dn("bob"), "uid=bob", f"ou=moved,{directory.people}")
    run = _succeeds(sync, sessions, connector, kind=SyncKind.INCREMENTAL)
    assert len(run.plan["team_adds"]) == len(run.plan["team_removes"]) == 1
    assert team_members(sessions, "Builders") == {"bob", "carol"}
    run = _succeeds(sync, sessions, connector)
    assert (run.plan["team_adds"], run.plan["team_removes"]) == ([], [])
