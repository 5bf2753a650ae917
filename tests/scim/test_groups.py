"""SCIM Groups as teams: create, rename, members, delete, and the group -> role mapping."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.actions import teams
from models.actions.scim import set_group_role
from models.entities import AuditEvent, Team, TeamMembership, User
from models.enums import Role, Source, TeamRole
from tests.scim.conftest import ops
from tests.scim.payloads import okta_create_group, okta_create_user, okta_rename_group
from tests.support import factories


def user(scim, email):
    return scim.post("/Users", okta_create_user(email, external_id=email)).json["id"]


def test_a_list_of_groups_shows_each_group_its_own_members_by_their_ids(scim):
    ann, bob, cy = (user(scim, f"{n}@example.com") for n in ("ann", "bob", "cy"))
    for name, members in (("Eng", [ann, bob]), ("Ops", [cy]), ("Empty", [])):
        body = okta_create_group(name)
        body["members"] = [{"value": m} for m in members]
        assert scim.post("/Groups", body).status_code == 201
    listed = scim.get("/Groups?sortBy=displayName").json["Resources"]
    shown = {g["displayName"]: [m["value"] for m in g.get("members", [])] for g in listed}
    assert shown == {"Eng": sorted([ann, bob]), "Ops": [cy], "Empty": []}
    for group in listed:
        for member in group.get("members", []):
            assert member["$ref"].endswith(f"/Users/{member['value']}")
            assert scim.get(f"/Users/{member['value']}").status_code == 200


def test_group_create_makes_a_team_whose_members_join_as_member(scim, session):
    ann, bob = user(scim, "ann@example.com"), user(scim, "bob@example.com")
    body = okta_create_group("Engineering")
    body["members"] = [{"value": ann}, {"value": bob}]
    response = scim.post("/Groups", body)
    assert response.status_code == 201
    group = response.json
    assert group["displayName"] == "Engineering"
    assert sorted(m["value"] for m in group["members"]) == sorted([ann, bob])
    team = session.scalar(select(Team))
    assert (team.name, team.external_source) == ("Engineering", Source.SCIM)
    roles = session.scalars(select(TeamMembership.role)).all()
    assert roles == [TeamRole.MEMBER, TeamRole.MEMBER]
    session.rollback()  # SQLite: release the write lock before the next request
    groups = scim.get(f"/Users/{ann}").json["groups"]
    assert groups == [
        {"value": group["id"], "$ref": group["meta"]["location"], "display": "Engineering"}
    ]


def test_group_display_name_is_unique(scim):
    scim.post("/Groups", okta_create_group("Engineering"))
    again = scim.post("/Groups", okta_create_group("engineering"))
    assert again.status_code == 409
    assert again.json["scimType"] == "uniqueness"


def test_put_replaces_only_scim_members_and_keeps_a_managers_team_role(scim, session, org):
    ann, bob = user(scim, "ann@example.com"), user(scim, "bob@example.com")
    group = scim.post("/Groups", {**okta_create_group("Eng"), "members": [{"value": ann}]}).json
    manual = factories.make_user(session, org, email="manual@example.com")
    team = session.scalar(select(Team))
    factories.add_member(session, team, manual, TeamRole.MANAGER)
    session.commit()
    response = scim.put(
        f"/Groups/{group['id']}", {**okta_create_group("Eng"), "members": [{"value": bob}]}
    )
    assert [m["value"] for m in response.json["members"]] == [bob]
    session.expire_all()
    members = {m.user.email: m.role for m in session.scalars(select(TeamMembership)).all()}
    assert members == {"bob@example.com": TeamRole.MEMBER, "manual@example.com": TeamRole.MANAGER}


def test_group_delete_deletes_the_team(scim, session):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.get(f"/Groups/{group['id']}").status_code == 404
    assert session.scalar(select(Team)) is None


def test_groups_filter_by_display_name_and_member(scim):
    ann = user(scim, "ann@example.com")
    eng = scim.post("/Groups", {**okta_create_group("Eng"), "members": [{"value": ann}]}).json
    scim.post("/Groups", okta_create_group("Sales"))
    by_name = scim.get('/Groups?filter=displayName eq "eng"&excludedAttributes=members').json
    assert [g["id"] for g in by_name["Resources"]] == [eng["id"]]
    assert "members" not in by_name["Resources"][0]
    member_filter = f'id eq "{eng["id"]}" and members eq "{ann}"'
    assert scim.get(f"/Groups?filter={member_filter}").json["totalResults"] == 1
    assert scim.get(f'/Users?filter=groups eq "{eng["id"]}"').json["totalResults"] == 1


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
def test_a_member_value_that_is_no_id_matches_nothing_and_joins_properly(scim):
    ann = user(scim, "ann@example.com")
    scim.post("/Groups", {**okta_create_group("Eng"), "members": [{"value": ann}]})
    for query in (
        '/Groups?filter=members.value eq "not-an-id"',
        '/Groups?filter=members[value eq "not-an-id"]',
        '/Users?filter=groups.value eq "not-an-id"',
    ):
        assert scim.get(query).json["totalResults"] == 0, query
    negated = scim.get('/Groups?filter=not (members[value eq "not-an-id"])').json
    assert negated["totalResults"] == 1


def test_teams_made_by_an_admin_are_not_scim_groups(scim, session, org):
    team = factories.make_team(session, org, "Handmade")
    session.commit()
    assert scim.get(f"/Groups/{team.id}").status_code == 404
    assert scim.get("/Groups").json["totalResults"] == 0


def test_a_mapped_group_makes_members_org_admins_and_demotes_them_when_they_leave(
    scim, session, org
):
    set_group_role(
        session,
        organisation=org,
        group_name="Odock Admins",
        role=Role.ORG_ADMIN,
        actor=factories.SETUP,
    )
    session.commit()
    ann = user(scim, "ann@example.com")
    group = scim.post("/Groups", okta_create_group("Odock Admins")).json
    scim.patch(
        f"/Groups/{group['id']}", ops({"op": "add", "path": "members", "value": [{"value": ann}]})
    )
    assert session.scalar(select(User.role)) is Role.ORG_ADMIN
    session.commit()
    scim.patch(
        f"/Groups/{group['id']}", ops({"op": "remove", "path": f'members[value eq "{ann}"]'})
    )
    session.expire_all()
    assert session.scalar(select(User.role)) is Role.USER


def test_leaving_a_mapped_group_restores_the_role_held_before(scim, session, org):
    set_group_role(
        session, organisation=org, group_name="Admins", role=Role.ORG_ADMIN, actor=factories.SETUP
    )
    factories.make_user(session, org, email="ann@example.com", role=Role.MANAGER)
    session.commit()
    ann = user(scim, "ann@example.com")
    group = scim.post("/Groups", {**okta_create_group("Admins"), "members": [{"value": ann}]}).json
    assert session.scalar(select(User.role)) is Role.ORG_ADMIN
    session.commit()
    scim.delete(f"/Groups/{group['id']}")
    session.expire_all()
    assert session.scalar(select(User.role)) is Role.MANAGER


def test_a_role_a_group_granted_ends_with_the_users_delete(scim, session, org):
    """The grant came with the SCIM user's membership: once the IdP deletes the user it is
    taken back (an admin's role stays), so a later create of the same person starts from
    the role held before, not an org-admin nobody's group gives any more."""
    set_group_role(
        session, organisation=org, group_name="Admins", role=Role.ORG_ADMIN, actor=factories.SETUP
    )
    person = factories.make_user(session, org, email="ann@example.com", role=Role.MANAGER)
    session.commit()
    ann = user(scim, "ann@example.com")
    scim.post("/Groups", {**okta_create_group("Admins"), "members": [{"value": ann}]})
    assert session.scalar(select(User.role)) is Role.ORG_ADMIN
    session.commit()

    assert scim.delete(f"/Users/{ann}").status_code == 204
    session.expire_all()
    assert session.scalar(select(User.role)) is Role.MANAGER
    session.commit()  # SQLite: a session that read holds the write lock until it ends
    again = scim.post("/Users", okta_create_user("ann@example.com", external_id="again"))
    assert again.status_code == 201, again.json
    session.expire_all()
    assert session.scalar(select(User.role)) is Role.MANAGER
    updates = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "user.updated", AuditEvent.target_id == str(person.id))
        .order_by(AuditEvent.occurred_at, AuditEvent.seq)
    ).all()
    role_changes = [
        (e.before.get("role"), e.after.get("role"))
        for e in updates
        if e.before.get("role") != e.after.get("role")
    ]
    assert role_changes == [("MANAGER", "ORG_ADMIN"), ("ORG_ADMIN", "MANAGER")]


def test_unknown_members_are_refused_and_nothing_changes(scim, session):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    ann = user(scim, "ann@example.com")
    response = scim.patch(
        f"/Groups/{group['id']}",
        ops(
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": ann}, {"value": "nobody"}]},
        ),
    )
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    after = scim.get(f"/Groups/{group['id']}").json
    assert after["displayName"] == "Eng"
    assert "members" not in after


def test_a_user_deleted_and_created_again_is_in_none_of_the_groups_it_left(scim, session, org):
    ann, bob = user(scim, "ann@example.com"), user(scim, "bob@example.com")
    group = scim.post("/Groups", okta_create_group("Engineering")).json
    add = ops({"op": "add", "path": "members", "value": [{"value": ann}, {"value": bob}]})
    assert scim.patch(f"/Groups/{group['id']}", add).status_code in (200, 204)
    person = session.scalar(select(User).where(User.email_key == "ann@example.com"))
    admins, directory = factories.make_team(session, org), factories.make_team(session, org)
    directory.external_source = Source.LDAP
    for team in (admins, directory):
        factories.add_member(session, team, person)
    session.commit()
    assert scim.delete(f"/Users/{ann}").status_code == 204
    deleted = scim.get(f"/Groups/{group['id']}").json

    again = scim.post("/Users", okta_create_user("ann@example.com", external_id="ann@example.com"))

    assert again.status_code == 201, again.json
    assert again.json["active"] is True
    assert again.json.get("groups", []) == []
    assert scim.get(f"/Users/{again.json['id']}").json.get("groups", []) == []
    after = scim.get(f"/Groups/{group['id']}").json
    assert [m["value"] for m in after["members"]] == [bob]
    assert after["meta"]["lastModified"] > deleted["meta"]["lastModified"]
    assert [g["value"] for g in scim.get(f"/Users/{bob}").json["groups"]] == [group["id"]]
    session.rollback()
    removed = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "team.member_removed")
    ).all()
    assert [(e.target_id, e.source, e.before["user_id"]) for e in removed] == [
        (group["id"], Source.SCIM, str(person.id))
    ]
    kept = select(TeamMembership.team_id).where(TeamMembership.user_id == person.id)
    assert set(session.scalars(kept)) == {admins.id, directory.id}


def test_a_patch_of_members_value_is_a_mutability_error_and_keeps_every_member(scim, unchanged):
    """`add members.value` wrote the one id into every member: the team kept that person
    and the others left it, without any remove sent. members.value is immutable (RFC 7643
    section 2.2 and the Group schema): 400 mutability, nobody leaves."""
    ann, bob, cid = (user(scim, f"{n}@example.com") for n in ("ann", "bob", "cid"))
    group = scim.post(
        "/Groups", {**okta_create_group("Ops"), "members": [{"value": ann}, {"value": bob}]}
    ).json
    unchanged()
    response = scim.patch(
        f"/Groups/{group['id']}", ops({"op": "add", "path": "members.value", "value": cid})
    )
    assert response.status_code == 400, response.json
    assert response.json["scimType"] == "mutability"
    unchanged()
    members = scim.get(f"/Groups/{group['id']}").json["members"]
    assert sorted(m["value"] for m in members) == sorted([ann, bob])


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "members"},
        {"op": "add", "path": "members", "value": None},
        {"op": "Add", "path": "members", "value": ""},
        {"op": "add", "value": {"members": None}},
        {"op": "replace", "path": "members"},
    ],
    ids=["add-no-value", "add-null", "Add-empty-string", "add-no-path-null", "replace-no-value"],
)
def test_an_add_without_members_or_a_replace_without_value_is_refused_and_keeps_every_member(
    scim, unchanged, operation
):
    """`add members` with no value (or null) read as "unassign members": every member left
    the team, with 200. RFC 7644 section 3.5.2.1 and 3.5.2.3: add and replace MUST carry a
    value; an add of nothing cannot remove (scim2-server: 400 invalidValue)."""
    ann, bob = user(scim, "ann@example.com"), user(scim, "bob@example.com")
    group = scim.post(
        "/Groups", {**okta_create_group("Ops"), "members": [{"value": ann}, {"value": bob}]}
    ).json
    unchanged()
    response = scim.patch(f"/Groups/{group['id']}", ops(operation))
    assert response.status_code == 400, response.json
    assert response.json["scimType"] == "invalidValue"
    unchanged()
    members = scim.get(f"/Groups/{group['id']}").json["members"]
    assert sorted(m["value"] for m in members) == sorted([ann, bob])


def test_a_remove_of_members_by_an_empty_value_list_removes_nobody(scim, unchanged):
    """A remove with a value list removes the listed members (Entra ID); an empty list
    removed every member, as a remove without value does. A batch of no removals is no
    removal."""
    ann, bob = user(scim, "ann@example.com"), user(scim, "bob@example.com")
    group = scim.post(
        "/Groups", {**okta_create_group("Ops"), "members": [{"value": ann}, {"value": bob}]}
    ).json
    unchanged()
    operation = {"op": "Remove", "path": "members", "value": []}
    response = scim.patch(f"/Groups/{group['id']}", ops(operation))
    assert response.status_code in (200, 204), response.json
    unchanged()
    members = scim.get(f"/Groups/{group['id']}").json["members"]
    assert sorted(m["value"] for m in members) == sorted([ann, bob])


def test_a_team_named_decomposed_by_another_source_is_the_group_of_its_composed_name(
    scim, session, org
):
    """ "Café" typed with a decomposed é (as macOS and some LDAP servers send it) by the admin
    API, the CLI or a directory is the team Okta's composed "Café" names: a SCIM create of
    it is a uniqueness conflict, not a second team that looks the same, and a filter on the
    composed name finds the SCIM group an NFD rename leaves."""
    factories.make_team(session, org, "Cafe\u0301")
    session.commit()
    again = scim.post("/Groups", okta_create_group("CAF\u00c9"))
    assert again.status_code == 409, again.json
    assert again.json["scimType"] == "uniqueness"
    names = session.scalars(select(Team.name).where(Team.organisation_id == org.id)).all()
    assert names == ["Caf\u00e9"]
    session.rollback()  # SQLite: the read's lock would hold the next write off
    created = scim.post("/Groups", okta_create_group("Tea")).json
    team = session.get_one(Team, uuid.UUID(created["id"]))
    teams.rename_team(session, team=team, name="The\u0301", actor=factories.SETUP)
    session.commit()
    found = scim.get('/Groups?filter=displayName eq "TH\u00c9"').json
    assert [g["id"] for g in found["Resources"]] == [created["id"]]
    assert found["Resources"][0]["displayName"] == "Th\u00e9"


def test_a_group_named_before_the_name_rule_keeps_working_and_can_be_renamed(scim, session, org):
    """A group whose name holds a hidden character, saved before such names were refused:
    the rule bites on a new name only. A PUT that sends its name again (to change its members)
    is accepted, a rename to a clean name is, a rename to another hidden name is not, and it
    can be deleted."""
    legacy = "Ad\u200bmins"
    team = Team(
        organisation_id=org.id,
        name=legacy,
        name_key=legacy.lower(),
        external_source=Source.SCIM,
        external_id="okta-legacy",
    )
    session.add(team)
    session.commit()
    group = f"/Groups/{team.id}"
    ann = user(scim, "ann@example.com")
    body = {**okta_create_group(legacy), "externalId": "okta-legacy", "members": [{"value": ann}]}
    replaced = scim.put(group, body)
    assert replaced.status_code == 200, replaced.json
    assert [m["value"] for m in replaced.json["members"]] == [ann]
    spoof = scim.patch(group, okta_rename_group(str(team.id), "Ad\u200bmins 2"))
    assert spoof.status_code == 400, spoof.json
    renamed = scim.patch(group, okta_rename_group(str(team.id), "Admins"))
    assert renamed.status_code in (200, 204), renamed.json
    assert scim.get(group).json["displayName"] == "Admins"
    assert scim.delete(group).status_code == 204


@pytest.mark.parametrize(
    "operation",
    [
        lambda cy: {"op": "remove", "path": f'members[value eq "{cy}"]'},
        lambda cy: {"op": "Remove", "path": "members", "value": [{"value": cy}]},
    ],
    ids=["value path", "value list"],
)
def test_a_remove_of_someone_who_is_not_a_member_changes_nothing_and_audits_nothing(
    scim, unchanged, session, operation
):
    """RFC 7644 section 3.5.2.2: a remove of a member the group does not have is no change;
    the PATCH succeeds (an IdP sends it after a retry), and there is no `team.member_removed`
    for a removal that did not happen."""
    ann, cy = user(scim, "ann@example.com"), user(scim, "cy@example.com")
    group = scim.post("/Groups", {**okta_create_group("Ops"), "members": [{"value": ann}]}).json
    unchanged()
    response = scim.patch(f"/Groups/{group['id']}", ops(operation(cy)))
    assert response.status_code in (200, 204), response.json
    unchanged()
    removed = session.scalars(select(AuditEvent).where(AuditEvent.action == "team.member_removed"))
    assert removed.all() == []
