"""What the real IdPs send that the RFC does not quite say: one test per quirk, named after it."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import Revocation, TeamMembership, User
from models.enums import UserStatus
from tests.scim.payloads import (
    ENTERPRISE,
    entra_create_group,
    entra_create_user,
    entra_members,
    okta_add_members,
    okta_create_group,
    okta_create_user,
    okta_deactivate,
    okta_remove_member,
    okta_rename_group,
    onelogin_create_user,
    rfc7644_3_5_2_patch,
)
from tests.scim.vendor_payloads import entra_unflagged_single


def entra_user(scim, email="entra@example.com"):
    response = scim.post("/Users", entra_create_user(email, external_id=email.split("@")[0]))
    assert response.status_code == 201, response.json
    return response.json


def status_of(session, email):
    session.expire_all()
    status = session.scalar(select(User.status).where(User.email_key == email))
    session.rollback()
    return status


def test_entra_capitalised_op_names(scim):
    body = entra_user(scim)
    response = scim.patch(
        f"/Users/{body['id']}",
        rfc7644_3_5_2_patch(
            {"op": "Replace", "path": "displayName", "value": "Renamed"},
            {"op": "Add", "path": "nickName", "value": "Nick"},
            {"op": "Remove", "path": "name.formatted"},
        ),
    )
    assert response.status_code == 200
    assert response.json["displayName"] == "Renamed"
    assert response.json["nickName"] == "Nick"
    assert "formatted" not in response.json["name"]


def test_entra_active_as_the_string_false_and_true(scim, session):
    body = entra_user(scim)
    off = rfc7644_3_5_2_patch({"op": "Replace", "path": "active", "value": "False"})
    assert scim.patch(f"/Users/{body['id']}", off).json["active"] is False
    assert status_of(session, "entra@example.com") is UserStatus.REVOKED
    on = rfc7644_3_5_2_patch({"op": "Replace", "path": "active", "value": "True"})
    assert scim.patch(f"/Users/{body['id']}", on).json["active"] is True
    assert status_of(session, "entra@example.com") is UserStatus.ACTIVE


def test_entra_without_the_flag_wraps_a_single_value_in_a_list(scim, session):
    """Entra ID without aadOptscim062020 sends a single-valued attribute as [{"value": x}]:
    it was 400 invalidValue ("nickName must be a string, not a JSON array"), so a tenant on
    Entra's default behaviour could not add a nickName, title or department."""
    body = entra_user(scim)
    boss = entra_user(scim, "boss@example.com")["id"]
    for op, path, value in (
        ("Add", "nickName", "Babs"),
        ("Replace", "title", "Guide"),
        ("Replace", "name.givenName", "Barbara"),
        ("Replace", f"{ENTERPRISE}:department", "Tours"),
        ("Add", f"{ENTERPRISE}:manager", boss),
    ):
        response = scim.patch(f"/Users/{body['id']}", entra_unflagged_single(op, path, value))
        assert response.status_code == 200, (path, response.json)
    assert response.json["nickName"] == "Babs"
    assert response.json["title"] == "Guide"
    assert response.json["name"]["givenName"] == "Barbara"
    assert response.json[ENTERPRISE]["department"] == "Tours"
    assert response.json[ENTERPRISE]["manager"]["value"] == boss
    off = scim.patch(f"/Users/{body['id']}", entra_unflagged_single("Replace", "active", "False"))
    assert off.json["active"] is False
    assert status_of(session, "entra@example.com") is UserStatus.REVOKED


def test_entra_address_and_phone_updates_are_kept(scim, session):
    """Entra ID's default mappings write addresses[type eq "work"].* and phoneNumbers[type eq
    "…"].value one PATCH at a time. A change to an address or phone list that already
    existed answered 200 with the new value, then was lost: the operations changed the
    stored JSON in place, so the write saw nothing new (a GET showed the old list)."""
    body = entra_user(scim)
    steps = (
        ("Add", 'addresses[type eq "work"].locality', "Seattle"),
        ("Add", 'addresses[type eq "work"].streetAddress', "1 Microsoft Way"),
        ("Add", 'phoneNumbers[type eq "work"].value', "+1 425 555 0100"),
        ("Replace", 'phoneNumbers[type eq "mobile"].value', "+1 425 555 0101"),
        ("Replace", 'addresses[type eq "work"].locality', "Redmond"),
    )
    for op, path, value in steps:
        operation = {"op": op, "path": path, "value": value}
        response = scim.patch(f"/Users/{body['id']}", rfc7644_3_5_2_patch(operation))
        assert response.status_code == 200, response.json
    read = scim.get(f"/Users/{body['id']}").json
    assert read["addresses"] == [
        {"locality": "Redmond", "streetAddress": "1 Microsoft Way", "type": "work"}
    ]
    assert read["phoneNumbers"] == [
        {"value": "+1 425 555 0100", "type": "work"},
        {"value": "+1 425 555 0101", "type": "mobile"},
    ]
    assert read == response.json
    removal = {"op": "Remove", "path": 'phoneNumbers[type eq "mobile"]'}
    scim.patch(f"/Users/{body['id']}", rfc7644_3_5_2_patch(removal))
    assert [p["type"] for p in scim.get(f"/Users/{body['id']}").json["phoneNumbers"]] == ["work"]


def test_a_list_for_a_single_valued_attribute_is_still_refused(scim):
    """Only Entra's one-element [{"value": x}] is unwrapped; other lists stay errors."""
    body = entra_user(scim)
    for value in (["Babs"], [{"value": "a"}, {"value": "b"}], [{"value": "a", "type": "x"}]):
        operation = {"op": "replace", "path": "nickName", "value": value}
        response = scim.patch(f"/Users/{body['id']}", rfc7644_3_5_2_patch(operation))
        assert response.status_code == 400, value
        assert response.json["scimType"] == "invalidValue"


def test_entra_no_path_value_whose_keys_are_paths(scim):
    body = entra_user(scim)
    response = scim.patch(
        f"/Users/{body['id']}",
        rfc7644_3_5_2_patch(
            {
                "op": "Replace",
                "value": {
                    "name.givenName": "Given",
                    "name.familyName": "Family",
                    f"{ENTERPRISE}:department": "Research",
                    'emails[type eq "work"].value': "moved@example.com",
                },
            }
        ),
    )
    assert response.status_code == 200
    assert response.json["name"]["givenName"] == "Given"
    assert response.json["name"]["familyName"] == "Family"
    assert response.json[ENTERPRISE]["department"] == "Research"
    assert response.json["emails"][0]["value"] == "moved@example.com"


def test_entra_manager_as_a_bare_string_or_a_value_object(scim):
    body = entra_user(scim)
    boss_1 = entra_user(scim, "boss1@example.com")["id"]
    boss_2 = entra_user(scim, "boss2@example.com")["id"]
    path = f"{ENTERPRISE}:manager"
    bare = rfc7644_3_5_2_patch({"op": "Add", "path": path, "value": boss_1})
    assert scim.patch(f"/Users/{body['id']}", bare).json[ENTERPRISE]["manager"]["value"] == boss_1
    wrapped = rfc7644_3_5_2_patch({"op": "Replace", "path": path, "value": {"value": boss_2}})
    assert (
        scim.patch(f"/Users/{body['id']}", wrapped).json[ENTERPRISE]["manager"]["value"] == boss_2
    )
    found = scim.get(f'/Users?filter={ENTERPRISE}:manager.value eq "{boss_2}"')
    assert found.json["totalResults"] == 1


def test_entra_empty_string_or_null_means_unassigned(scim):
    body = entra_user(scim)
    boss = entra_user(scim, "boss@example.com")["id"]
    path = f"{ENTERPRISE}:manager"
    scim.patch(
        f"/Users/{body['id']}", rfc7644_3_5_2_patch({"op": "Add", "path": path, "value": boss})
    )
    cleared = scim.patch(
        f"/Users/{body['id']}",
        rfc7644_3_5_2_patch(
            {"op": "Replace", "path": path, "value": ""},
            {"op": "Replace", "path": "displayName", "value": None},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": ""},
        ),
    ).json
    assert "manager" not in cleared.get(ENTERPRISE, {})
    assert "department" not in cleared.get(ENTERPRISE, {})
    assert "displayName" not in cleared


def test_entra_extra_microsoft_urn_on_group_create(scim):
    response = scim.post("/Groups", entra_create_group("Entra Group", "ext-group-1"))
    assert response.status_code == 201
    assert response.json["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    assert response.json["externalId"] == "ext-group-1"


def test_entra_remove_members_with_a_value_list_removes_only_those(scim, session):
    ids = [entra_user(scim, f"u{n}@example.com")["id"] for n in range(3)]
    group = scim.post("/Groups", entra_create_group("G", "g")).json
    scim.patch(f"/Groups/{group['id']}", entra_members("Add", *ids))
    response = scim.patch(f"/Groups/{group['id']}", entra_members("Remove", ids[0], ids[2]))
    assert response.status_code == 200
    assert [m["value"] for m in response.json["members"]] == [ids[1]]
    assert len(session.scalars(select(TeamMembership)).all()) == 1


def test_onelogin_emails_as_an_object(scim, session):
    response = scim.post("/Users", onelogin_create_user("one@example.com"))
    assert response.status_code == 201
    assert response.json["emails"] == [
        {"value": "one@example.com", "type": "work", "primary": True}
    ]
    assert session.scalar(select(User.email)) == "one@example.com"


def test_okta_deactivate_via_patch_with_no_path(scim, session):
    body = scim.post("/Users", okta_create_user("okta@example.com")).json
    response = scim.patch(f"/Users/{body['id']}", okta_deactivate())
    assert response.status_code == 200
    assert response.json["active"] is False
    assert status_of(session, "okta@example.com") is UserStatus.REVOKED


def test_okta_deactivate_via_put(scim, session):
    body = scim.post("/Users", okta_create_user("okta@example.com")).json
    replacement = {**okta_create_user("okta@example.com"), "id": body["id"], "active": False}
    response = scim.put(f"/Users/{body['id']}", replacement)
    assert response.status_code == 200
    assert response.json["active"] is False
    assert status_of(session, "okta@example.com") is UserStatus.REVOKED
    assert session.scalar(select(Revocation.reason)) == "SCIM active=false"


def test_okta_group_rename_patch_carrying_the_read_only_id(scim):
    group = scim.post("/Groups", okta_create_group("Old")).json
    response = scim.patch(f"/Groups/{group['id']}", okta_rename_group(group["id"], "New"))
    assert response.status_code == 200
    assert response.json["displayName"] == "New"
    assert response.json["id"] == group["id"]


def test_okta_member_removal_by_value_path(scim):
    ann = scim.post("/Users", okta_create_user("ann@example.com", "a")).json["id"]
    bob = scim.post("/Users", okta_create_user("bob@example.com", "b")).json["id"]
    group = scim.post("/Groups", okta_create_group("G")).json
    scim.patch(f"/Groups/{group['id']}", okta_add_members((ann, "ann"), (bob, "bob")))
    response = scim.patch(f"/Groups/{group['id']}", okta_remove_member(ann))
    assert [m["value"] for m in response.json["members"]] == [bob]


def test_unknown_extensions_are_ignored_safely(scim):
    body = okta_create_user("ext@example.com")
    body["schemas"].append("urn:example:custom:2.0:User")
    body["urn:example:custom:2.0:User"] = {"favouriteColour": "green"}
    created = scim.post("/Users", body)
    assert created.status_code == 201
    assert "urn:example:custom:2.0:User" not in created.json
    patched = scim.patch(
        f"/Users/{created.json['id']}",
        rfc7644_3_5_2_patch(
            {"op": "add", "path": "urn:example:custom:2.0:User:favouriteColour", "value": "red"}
        ),
    )
    assert patched.status_code == 200


def test_a_patch_adding_a_primary_email_moves_primary_to_it(scim, session):
    """An IdP that adds the new address as primary (RFC 7644 section 3.5.2: the server sets
    primary false on the others) was answered 400 invalidValue, 'at most one primary'."""
    body = scim.post("/Users", okta_create_user("old@example.com")).json
    new = {"value": "new@example.com", "type": "work", "primary": True}
    operation = {"op": "add", "path": "emails", "value": [new]}
    response = scim.patch(f"/Users/{body['id']}", rfc7644_3_5_2_patch(operation))
    assert response.status_code == 200, response.json
    assert [(e["value"], e.get("primary")) for e in response.json["emails"]] == [
        ("old@example.com", False),
        ("new@example.com", True),
    ]
    assert session.scalar(select(User.email)) == "new@example.com"  # the person's email
    session.rollback()


def test_a_base_url_entered_with_a_trailing_slash(scim, session):
    """Entra ID's Tenant URL and Okta's base URL are joined to "/Users" as typed: a trailing
    slash there makes every request "/scim/v2//Users…", which was 404 (a redirect built from
    the Host header is not an answer either)."""
    created = scim.post("//Users", okta_create_user("slash@example.com"))
    assert created.status_code == 201, created.json
    user_id = created.json["id"]
    assert created.json["meta"]["location"].endswith(f"/scim/v2/Users/{user_id}")
    found = scim.get('//Users?filter=userName eq "slash@example.com"')
    assert found.status_code == 200 and found.json["totalResults"] == 1
    assert scim.get(f"//Users/{user_id}").status_code == 200
    assert scim.patch(f"//Users/{user_id}", okta_deactivate()).status_code == 200
    assert status_of(session, "slash@example.com") is UserStatus.REVOKED
    assert scim.get("//ServiceProviderConfig").status_code == 200
    assert scim.get("///Groups").status_code == 200


def test_doubled_slashes_elsewhere_in_a_scim_path_are_still_not_found(scim):
    """Only the base URL's join is read as one slash: an id is never split across segments."""
    created = scim.post("/Users", okta_create_user("inner@example.com"))
    assert scim.get(f"/Users//{created.json['id']}").status_code == 404
