"""Whole lifecycles as the other IdPs send them (tests/scim/vendor_payloads.py cites each
source): the answers each client checks, and what odock-sync made of them (status, teams)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, quote_plus, urlsplit

from sqlalchemy import select

from models.entities import Team, TeamMembership, User
from models.enums import UserStatus
from tests.scim.conftest import SCIM
from tests.scim.payloads import (
    entra_create_user,
    okta_create_group,
    okta_create_user,
    okta_rename_group,
    rfc7644_3_5_2_patch,
)
from tests.scim.vendor_payloads import (
    OKTA_SPEC_GROUPS_CONTENT_TYPE,
    OKTA_SPEC_HEADERS,
    PING_FILTER_EXAMPLE,
    entra_create_group_flagged,
    entra_flagged_active,
    entra_flagged_add_members,
    entra_flagged_add_single,
    entra_flagged_remove_members,
    entra_flagged_replace_many,
    entra_rename_group,
    jumpcloud_user,
    members_by_value_list,
    okta_put_group,
    okta_spec_create_user,
    okta_spec_unassign,
    onelogin_enterprise_user,
    ping_group,
    ping_user,
    plain_group,
    rippling_terminate,
    rippling_user,
)

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def listed(response, total):
    """A ListResponse as every client reads it: schema, numbers, `Resources` so cased."""
    assert response.status_code == 200, response.json
    assert response.mimetype == SCIM
    body = response.json
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == total
    for key in ("startIndex", "itemsPerPage", "totalResults"):
        assert isinstance(body[key], int)
    assert len(body["Resources"]) == min(total, body["itemsPerPage"])
    return body["Resources"]


def created(response, resource_type):
    assert response.status_code == 201, response.json
    assert response.mimetype == SCIM
    assert isinstance(response.json["id"], str)
    assert response.json["meta"]["resourceType"] == resource_type
    assert response.headers["Location"] == response.json["meta"]["location"]
    return response.json


def missing(response):
    assert response.status_code == 404
    assert response.mimetype == SCIM
    assert response.json["schemas"] == [ERROR]
    assert response.json["status"] == "404"
    assert response.json["detail"]


def person(session, email):
    """(status, names of the person's teams) as odock-sync holds them."""
    session.expire_all()
    user = session.scalar(select(User).where(User.email_key == email))
    assert user is not None
    teams = session.scalars(
        select(Team.name).join(TeamMembership).where(TeamMembership.user_id == user.id)
    ).all()
    result = (user.status, sorted(teams))
    session.rollback()
    return result


def test_okta_spec_test(scim, session):
    """Okta's conformance test, step by step, with its headers and assertions."""
    scim.post("/Users", okta_create_user("existing@example.com"))  # it needs one user
    (first,) = listed(scim.get("/Users?count=1&startIndex=1", **OKTA_SPEC_HEADERS), 1)
    by_id = scim.get(f"/Users/{first['id']}", **OKTA_SPEC_HEADERS)
    assert by_id.status_code == 200
    for entity in (first, by_id.json):
        assert entity["id"] == first["id"]
        assert entity["name"]["givenName"] and entity["name"]["familyName"]
        assert entity["userName"] == "existing@example.com"
        assert entity["active"] is True
        assert entity["emails"][0]["value"] == "existing@example.com"
    assert listed(scim.get("/Users?count=2&startIndex=1", **OKTA_SPEC_HEADERS), 1)
    groups = scim.get(
        "/Groups?count=100&startIndex=1",
        **{**OKTA_SPEC_HEADERS, "Content-Type": OKTA_SPEC_GROUPS_CONTENT_TYPE},
    )
    assert listed(groups, 0) == []
    assert listed(scim.get("/Groups", **OKTA_SPEC_HEADERS), 0) == []
    email = "tina.erickson@mailinator.com"
    lookup = "/Users?count=100&filter=" + quote(f'userName eq "{email}"') + "&startIndex=1"
    assert listed(scim.get(lookup, **OKTA_SPEC_HEADERS), 0) == []
    missing(scim.get("/Users/3f8b1b6f0c2b47e5a4c6e3a0c5d2b1a9}}", **OKTA_SPEC_HEADERS))
    user_name = "tina.erickson@okta.example.com"
    body = okta_spec_create_user(user_name, email)
    user = created(scim.post("/Users", body, **OKTA_SPEC_HEADERS), "User")
    assert user["active"] is True
    assert user["userName"] == user_name
    assert user["name"] == {"givenName": "Tina", "familyName": "Erickson"}
    assert "urn:ietf:params:scim:schemas:core:2.0:User" in user["schemas"]
    assert "password" not in user
    again = scim.get(f"/Users/{user['id']}", **OKTA_SPEC_HEADERS)
    assert again.status_code == 200
    assert again.json["userName"] == user_name
    duplicate = scim.post("/Users", body, **OKTA_SPEC_HEADERS)
    assert duplicate.status_code == 409
    assert duplicate.json["scimType"] == "uniqueness"
    upper = "/Users?filter=" + quote(f'userName eq "{user_name.upper()}"')
    assert listed(scim.get(upper, **OKTA_SPEC_HEADERS), 1)[0]["id"] == user["id"]
    unassigned = scim.patch(f"/Users/{user['id']}", okta_spec_unassign(), **OKTA_SPEC_HEADERS)
    assert unassigned.status_code == 200
    assert unassigned.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, [])


def test_okta_put_integration_lifecycle(scim, session):
    """An Okta app without PATCH: profile, deactivation and reactivation are PUTs of the whole
    user (password included), the group push a PUT of the whole group."""
    email = "ramon.sanchez@example.com"
    lookup = "/Users?filter=" + quote(f'userName eq "{email}"') + "&startIndex=1&count=100"
    assert listed(scim.get(lookup), 0) == []
    user = created(scim.post("/Users", okta_create_user(email, "00uramon")), "User")
    group = created(scim.post("/Groups", okta_create_group("Cereal")), "Group")
    pushed = scim.put(
        f"/Groups/{group['id']}", okta_put_group(group["id"], "Cereal", (user["id"], email))
    )
    assert pushed.status_code == 200
    assert [m["value"] for m in pushed.json["members"]] == [user["id"]]
    renamed = scim.patch(f"/Groups/{group['id']}", okta_rename_group(group["id"], "Killer"))
    assert renamed.json["displayName"] == "Killer"
    profile = {**okta_create_user(email, "00uramon"), "id": user["id"], "title": "Phreak"}
    assert scim.put(f"/Users/{user['id']}", profile).json["title"] == "Phreak"
    assert person(session, email) == (UserStatus.ACTIVE, ["Killer"])
    off = scim.put(f"/Users/{user['id']}", {**profile, "active": False})
    assert off.status_code == 200
    assert off.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, ["Killer"])
    on = scim.put(f"/Users/{user['id']}", {**profile, "active": True})
    assert on.json["active"] is True
    assert person(session, email) == (UserStatus.ACTIVE, ["Killer"])
    emptied = scim.put(f"/Groups/{group['id']}", okta_put_group(group["id"], "Killer"))
    assert "members" not in emptied.json
    assert person(session, email) == (UserStatus.ACTIVE, [])


def test_entra_id_with_the_aadoptscim062020_flag(scim, session):
    """Entra ID matching on externalId, with the flag's RFC-shaped PATCH bodies."""
    email = "paul.cook@example.com"
    probe = "/Users?filter=" + quote_plus('userName eq "ad2a1a6e-7d6c-4f0b-9d3e-0e1f2a3b4c5d"')
    assert listed(scim.get(probe), 0) == []
    by_external_id = "/Users?filter=" + quote_plus('externalId eq "7c1d9f6e-pcook"')
    assert listed(scim.get(by_external_id), 0) == []
    user = created(scim.post("/Users", entra_create_user(email, "7c1d9f6e-pcook")), "User")
    # Entra's own encoding of the lookup: `+` for spaces, %40 for the at sign.
    by_user_name = "/Users?filter=" + quote_plus(f'userName eq "{email}"')
    assert listed(scim.get(by_user_name), 1)[0]["id"] == user["id"]
    assert listed(scim.get(by_external_id), 1)[0]["id"] == user["id"]
    projected = scim.get(f"/Users/{user['id']}?attributes=userName,externalId")
    assert set(projected.json) == {"schemas", "id", "userName", "externalId"}
    moved = scim.patch(
        f"/Users/{user['id']}",
        entra_flagged_replace_many("7c1d9f6e-pcook", "lord.nikon@example.com"),
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["emails"][0]["value"] == "lord.nikon@example.com"
    nick = scim.patch(f"/Users/{user['id']}", entra_flagged_add_single("nickName", "Nikon"))
    assert nick.json["nickName"] == "Nikon"
    assert person(session, "lord.nikon@example.com") == (UserStatus.ACTIVE, [])
    group = created(scim.post("/Groups", entra_create_group_flagged("Gibson", "gib-1")), "Group")
    by_name = "/Groups?excludedAttributes=members&filter=" + quote_plus('displayName eq "Gibson"')
    assert "members" not in listed(scim.get(by_name), 1)[0]
    added = scim.patch(f"/Groups/{group['id']}", entra_flagged_add_members(user["id"]))
    assert added.status_code == 200
    assert person(session, "lord.nikon@example.com") == (UserStatus.ACTIVE, ["Gibson"])
    assert scim.patch(f"/Groups/{group['id']}", entra_rename_group("Da Vinci")).status_code == 200
    removed = scim.patch(f"/Groups/{group['id']}", entra_flagged_remove_members(user["id"]))
    assert removed.status_code == 200
    assert person(session, "lord.nikon@example.com") == (UserStatus.ACTIVE, [])
    off = scim.patch(f"/Users/{user['id']}", entra_flagged_active(False))
    assert off.json["active"] is False
    # Entra's validator reads a disabled user back through a filter and wants `active`.
    assert listed(scim.get(by_user_name), 1)[0]["active"] is False
    assert person(session, "lord.nikon@example.com") == (UserStatus.REVOKED, [])
    on = scim.patch(f"/Users/{user['id']}", entra_flagged_active(True))
    assert on.json["active"] is True
    assert person(session, "lord.nikon@example.com") == (UserStatus.ACTIVE, [])
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    missing(scim.get(f"/Users/{user['id']}"))
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    missing(scim.get(f"/Groups/{group['id']}"))
    assert person(session, "lord.nikon@example.com")[0] is UserStatus.REVOKED


def test_lookups_as_the_idps_write_them_on_the_wire(scim, live_server, scim_secret):
    """The request lines as sent, over real HTTP: Entra's `+` and raw quotes (its SCIM
    validator's log: filter=userName+eq+"dale.mohr%40romaguera.uk"), %20 with raw quotes,
    all encoded (Okta), and the spec test's unknown id with its stray braces."""
    created(scim.post("/Users", okta_create_user("dale.mohr@romaguera.uk")), "User")
    address = urlsplit(live_server)
    for target, status, total in (
        ('/scim/v2/Users?filter=userName+eq+"dale.mohr%40romaguera.uk"', 200, 1),
        ('/scim/v2/Users?filter=userName%20eq%20"Dale.Mohr@romaguera.uk"', 200, 1),
        (
            "/scim/v2/Users?count=100&filter=userName%20eq%20%22dale.mohr%40romaguera.uk%22"
            "&startIndex=1",
            200,
            1,
        ),
        ('/scim/v2/Users?filter=userName+eq+"nobody%40romaguera.uk"', 200, 0),
        ("/scim/v2/Users/3f8b1b6f0c2b47e5a4c6e3a0c5d2b1a9}}", 404, None),
    ):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        headers = {"Authorization": f"Bearer {scim_secret}", "Accept": SCIM}
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert response.status == status, (target, body)
        assert response.getheader("Content-Type", "").startswith(SCIM)
        if total is not None:
            assert body["totalResults"] == total, target


def test_onelogin_lifecycle(scim, session):
    """OneLogin's calls: activation probe, group listing, the v2 Enterprise template with its
    empty parameters, value-list member changes, whole-user PUTs, DELETE."""
    assert listed(scim.get("/Users?filter=" + quote('userName eq "never-existing-user"')), 0) == []
    assert listed(scim.get("/Groups?count=100&startIndex=1"), 0) == []
    email = "emmanuel.goldstein@example.com"
    assert listed(scim.get("/Users?filter=" + quote(f'userName eq "{email}"')), 0) == []
    response = scim.post("/Users", onelogin_enterprise_user(email))
    user = created(response, "User")
    # The empty parameters store nothing (an empty string is no value, as Entra ID means it).
    assert "title" not in user
    assert "addresses" not in user
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" not in user
    assert person(session, email) == (UserStatus.ACTIVE, [])
    group = created(scim.post("/Groups", plain_group("Phreaks")), "Group")
    assert listed(scim.get("/Groups?count=100&startIndex=1"), 1)[0]["id"] == group["id"]
    added = scim.patch(f"/Groups/{group['id']}", members_by_value_list("add", user["id"]))
    assert [m["value"] for m in added.json["members"]] == [user["id"]]
    assert person(session, email) == (UserStatus.ACTIVE, ["Phreaks"])
    # Updates are the user as read back, changed and PUT whole (id, meta and all).
    current = scim.get(f"/Users/{user['id']}").json
    updated = scim.put(f"/Users/{user['id']}", {**current, "displayName": "Cereal Killer"})
    assert updated.status_code == 200, updated.json
    assert updated.json["displayName"] == "Cereal Killer"
    # Suspension: out of the group, then the user PUT with active false; and back.
    removed = scim.patch(f"/Groups/{group['id']}", members_by_value_list("remove", user["id"]))
    assert removed.status_code == 200
    off = scim.put(f"/Users/{user['id']}", {**updated.json, "active": False})
    assert off.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, [])
    on = scim.put(f"/Users/{user['id']}", {**off.json, "active": True})
    assert on.json["active"] is True
    assert person(session, email) == (UserStatus.ACTIVE, [])
    # Suspended, deleted, then assigned again: the same person comes back.
    scim.put(f"/Users/{user['id']}", {**on.json, "active": False})
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    missing(scim.get(f"/Users/{user['id']}"))
    assert person(session, email)[0] is UserStatus.REVOKED
    assert listed(scim.get("/Users?filter=" + quote(f'userName eq "{email}"')), 0) == []
    back = created(scim.post("/Users", onelogin_enterprise_user(email)), "User")
    assert back["id"] != user["id"]
    assert back["active"] is True
    assert person(session, email) == (UserStatus.ACTIVE, [])


def test_onelogin_manager_parameter(scim):
    """The template's manager is {"value": "{$parameters.external_manager_id}", ...}: the
    manager's id in this app once OneLogin has provisioned them, else empty."""
    boss = created(scim.post("/Users", onelogin_enterprise_user("boss.man@example.com")), "User")
    with_boss = onelogin_enterprise_user("worker.bee@example.com", manager_id=boss["id"])
    worker = created(scim.post("/Users", with_boss), "User")
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert worker[enterprise]["manager"]["value"] == boss["id"]
    # Refused on purpose (docs/scim.md, OneLogin): a manager that is no user here.
    stranger = onelogin_enterprise_user("new.hire@example.com", manager_id="00u-elsewhere")
    refused = scim.post("/Users", stranger)
    assert refused.status_code == 400
    assert refused.json["scimType"] == "invalidValue"
    assert listed(scim.get("/Users?filter=" + quote('userName eq "new.hire@example.com"')), 0) == []


def test_onelogin_paged_sync(scim):
    """OneLogin reads every user page by page (count=100), trusting itemsPerPage."""
    for n in range(150):
        scim.post("/Users", onelogin_enterprise_user(f"user{n:03}.page@example.com"))
    first = scim.get("/Users?count=100&startIndex=1").json
    assert (first["startIndex"], first["itemsPerPage"], first["totalResults"]) == (1, 100, 150)
    second = scim.get("/Users?count=100&startIndex=101").json
    assert (second["startIndex"], second["itemsPerPage"], len(second["Resources"])) == (101, 50, 50)
    seen = {u["id"] for u in first["Resources"]} | {u["id"] for u in second["Resources"]}
    assert len(seen) == 150


def test_jumpcloud_lifecycle(scim, session):
    """JumpCloud: Test Connection creates and deletes a test user and a test group; then the
    real push with value-list member changes."""
    test_user = created(scim.post("/Users", jumpcloud_user("it.test@example.com")), "User")
    test_group = created(scim.post("/Groups", plain_group("JumpCloud Test Group")), "Group")
    assert scim.delete(f"/Groups/{test_group['id']}").status_code == 204
    assert scim.delete(f"/Users/{test_user['id']}").status_code == 204
    assert session.scalar(select(Team)) is None
    session.rollback()
    email = "joey.pardella@example.com"
    assert listed(scim.get("/Users?filter=" + quote(f'userName eq "{email}"')), 0) == []
    user = created(scim.post("/Users", jumpcloud_user(email)), "User")
    group = created(scim.post("/Groups", plain_group("Engineering")), "Group")
    add = members_by_value_list("add", user["id"])
    assert scim.patch(f"/Groups/{group['id']}", add).status_code == 200
    assert person(session, email) == (UserStatus.ACTIVE, ["Engineering"])
    suspended = scim.put(f"/Users/{user['id']}", jumpcloud_user(email, active=False))
    assert suspended.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, ["Engineering"])
    restored = scim.put(f"/Users/{user['id']}", jumpcloud_user(email))
    assert restored.json["active"] is True
    assert person(session, email) == (UserStatus.ACTIVE, ["Engineering"])
    remove = members_by_value_list("remove", user["id"])
    assert scim.patch(f"/Groups/{group['id']}", remove).status_code == 200
    assert person(session, email) == (UserStatus.ACTIVE, [])
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert person(session, email)[0] is UserStatus.REVOKED


def test_pingfederate_and_pingone_lifecycle(scim, session):
    """Ping's provisioner: users by PUT only (no user PATCH), its admin-written filter
    expression, groups found by listing them all, members by group PATCH."""
    email = "janet.smith@example.com"
    expression = "/Users?filter=" + quote(PING_FILTER_EXAMPLE.format("jsmith"))
    assert listed(scim.get(expression), 0) == []
    user = created(scim.post("/Users", ping_user("jsmith", email)), "User")
    assert listed(scim.get(expression), 1)[0]["id"] == user["id"]
    # PingOne's other example, `email Co "%s"`, names no attribute of ours: refused, so
    # the admin writes `emails co "%s"` (docs/scim.md) instead of matching nobody.
    refused = scim.get("/Users?filter=" + quote('email Co "janet.smith@"'))
    assert refused.status_code == 400
    assert refused.json["scimType"] == "invalidFilter"
    by_email = "/Users?filter=" + quote('emails Co "janet.smith@"')
    assert listed(scim.get(by_email), 1)[0]["id"] == user["id"]
    assert listed(scim.get("/Groups?startIndex=1&count=100"), 0) == []
    group = created(scim.post("/Groups", ping_group("Analysts", user["id"])), "Group")
    assert person(session, email) == (UserStatus.ACTIVE, ["Analysts"])
    updated = scim.put(f"/Users/{user['id']}", ping_user("jsmith", email, title="Lead"))
    assert updated.json["title"] == "Lead"
    disabled = scim.put(f"/Users/{user['id']}", ping_user("jsmith", email, active=False))
    assert disabled.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, ["Analysts"])
    enabled = scim.put(f"/Users/{user['id']}", ping_user("jsmith", email))
    assert enabled.json["active"] is True
    remove = members_by_value_list("remove", user["id"])
    assert scim.patch(f"/Groups/{group['id']}", remove).status_code == 200
    assert person(session, email) == (UserStatus.ACTIVE, [])
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert person(session, email)[0] is UserStatus.REVOKED


def test_ping_provisions_a_disabled_user(scim, session):
    """ "Provision disabled users": a POST with active false creates the user revoked."""
    email = "disabled.hire@example.com"
    user = created(scim.post("/Users", ping_user("dhire", email, active=False)), "User")
    assert user["active"] is False
    assert person(session, email)[0] is UserStatus.REVOKED


def test_rippling_lifecycle(scim, session):
    """Rippling: Test connection reads /ServiceProviderConfig; users carry externalId and
    employeeNumber; groups by PATCH; termination is active false, then DELETE."""
    config = scim.get("/ServiceProviderConfig")
    assert config.status_code == 200
    assert config.json["patch"]["supported"] is True
    email = "rip.ling@example.com"
    by_external_id = "/Users?filter=" + quote('externalId eq "rippling-42"')
    assert listed(scim.get(by_external_id), 0) == []
    user = created(scim.post("/Users", rippling_user(email, "rippling-42", "42")), "User")
    group = created(scim.post("/Groups", plain_group("Payroll")), "Group")
    add = members_by_value_list("add", user["id"])
    assert scim.patch(f"/Groups/{group['id']}", add).status_code == 200
    assert person(session, email) == (UserStatus.ACTIVE, ["Payroll"])
    assert scim.patch(f"/Users/{user['id']}", rippling_terminate()).json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, ["Payroll"])
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert person(session, email)[0] is UserStatus.REVOKED


def test_a_deactivation_under_the_core_urn_revokes(scim, session):
    """RFC 7644 section 3.10 names core attributes under their schema's URN; a deactivation
    written as {"urn:…:core:2.0:User": {"active": false}} revokes, as scim2-server applies
    it, and a reactivation so written brings the person back (it was answered 200 and
    changed nothing: the leaver stayed active)."""
    email = "core.urn@example.com"
    user = created(scim.post("/Users", okta_create_user(email)), "User")
    group = created(scim.post("/Groups", okta_create_group("Core")), "Group")
    scim.patch(f"/Groups/{group['id']}", members_by_value_list("add", user["id"]))
    core = "urn:ietf:params:scim:schemas:core:2.0:User"
    off = scim.patch(
        f"/Users/{user['id']}",
        rfc7644_3_5_2_patch({"op": "replace", "value": {core: {"active": False}}}),
    )
    assert off.status_code == 200, off.json
    assert off.json["active"] is False
    assert person(session, email) == (UserStatus.REVOKED, ["Core"])
    on = scim.patch(
        f"/Users/{user['id']}",
        rfc7644_3_5_2_patch({"op": "replace", "value": {core: {"active": True}}}),
    )
    assert on.json["active"] is True
    assert person(session, email) == (UserStatus.ACTIVE, ["Core"])
    # A PUT so written is refused and changes nothing (it was answered 200, active kept).
    nested = {"schemas": [core], "userName": email, core: {"active": False}}
    refused = scim.put(f"/Users/{user['id']}", nested)
    assert refused.status_code == 400
    assert refused.json["scimType"] == "invalidSyntax"
    assert person(session, email) == (UserStatus.ACTIVE, ["Core"])
