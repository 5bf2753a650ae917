"""Complete provisioning lifecycles replayed request by request, as Okta and Entra ID send
them: lookup, create, update, group add/remove, deactivate, reactivate, delete."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select

from models.entities import AuditEvent, IdentityLink, Revocation, Team, TeamMembership, User
from models.enums import Source, UserStatus
from tests.scim.payloads import (
    entra_create_group,
    entra_create_user,
    entra_members,
    okta_add_members,
    okta_create_group,
    okta_create_user,
    okta_deactivate,
    okta_remove_member,
    okta_rename_group,
    rfc7644_3_5_2_patch,
)


def lookup(scim, resource, expression, extra=""):
    response = scim.get(f"/{resource}?filter={quote(expression)}{extra}")
    assert response.status_code == 200, response.json
    return response.json


def state(session, email):
    session.expire_all()
    user = session.scalar(select(User).where(User.email_key == email))
    result = (user.status, user.name) if user else None
    session.rollback()
    return result


def test_okta_lifecycle(scim, session):
    email = "dade.murphy@example.com"
    # Import / assign: Okta looks the user up by userName, then creates them.
    assert (
        lookup(scim, "Users", f'userName eq "{email}"', "&startIndex=1&count=100")["totalResults"]
        == 0
    )
    created = scim.post("/Users", okta_create_user(email))
    assert created.status_code == 201
    user_id = created.json["id"]
    assert state(session, email) == (UserStatus.ACTIVE, "Dade.murphy Okta")
    # Profile push: a full PUT with the changed name.
    profile = {**okta_create_user(email), "id": user_id}
    profile["name"] = {"givenName": "Dade", "familyName": "Murphy"}
    profile["displayName"] = "Dade Murphy"
    assert scim.put(f"/Users/{user_id}", profile).json["displayName"] == "Dade Murphy"
    assert state(session, email) == (UserStatus.ACTIVE, "Dade Murphy")
    # Group push: lookup, create, rename (with the read-only id), add and remove members.
    assert (
        lookup(scim, "Groups", 'displayName eq "Hackers"', "&excludedAttributes=members")[
            "totalResults"
        ]
        == 0
    )
    group_id = scim.post("/Groups", okta_create_group("Hackers")).json["id"]
    assert (
        scim.get("/Groups?excludedAttributes=members&startIndex=1&count=100").json["totalResults"]
        == 1
    )
    assert (
        scim.patch(f"/Groups/{group_id}", okta_rename_group(group_id, "Elite")).status_code == 200
    )
    added = scim.patch(f"/Groups/{group_id}", okta_add_members((user_id, email)))
    assert [m["value"] for m in added.json["members"]] == [user_id]
    removed = scim.patch(f"/Groups/{group_id}", okta_remove_member(user_id))
    assert "members" not in removed.json
    # Deactivate (PATCH without path), reactivate, and finally delete.
    assert scim.patch(f"/Users/{user_id}", okta_deactivate()).json["active"] is False
    assert state(session, email)[0] is UserStatus.REVOKED
    reactivate = rfc7644_3_5_2_patch({"op": "replace", "value": {"active": True}})
    assert scim.patch(f"/Users/{user_id}", reactivate).json["active"] is True
    assert state(session, email)[0] is UserStatus.ACTIVE
    assert scim.delete(f"/Groups/{group_id}").status_code == 204
    assert scim.delete(f"/Users/{user_id}").status_code == 204
    assert scim.get(f"/Users/{user_id}").status_code == 404
    assert state(session, email)[0] is UserStatus.REVOKED
    assert session.scalar(select(IdentityLink.deleted_at)) is not None
    assert len(session.scalars(select(Revocation)).all()) == 2
    sources = set(
        session.scalars(
            select(AuditEvent.source).where(AuditEvent.target_type.in_(["user", "team"]))
        )
    )
    assert sources == {Source.SCIM}


def test_entra_id_lifecycle(scim, session):
    email = "kate.libby@example.com"
    # Entra's connection test and the matching lookup.
    assert lookup(scim, "Users", 'userName eq "non-existent user"')["totalResults"] == 0
    assert lookup(scim, "Users", f'userName eq "{email}"')["totalResults"] == 0
    created = scim.post("/Users", entra_create_user(email, "klibby"))
    assert created.status_code == 201
    user_id = created.json["id"]
    assert lookup(scim, "Users", 'externalId eq "klibby"')["Resources"][0]["id"] == user_id
    assert (
        lookup(scim, "Users", f'emails[type eq "work"].value eq "{email}"')["Resources"][0]["id"]
        == user_id
    )
    # Attribute updates as Entra sends them.
    boss = scim.post("/Users", entra_create_user("zero.cool@example.com", "zcool")).json["id"]
    update = rfc7644_3_5_2_patch(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "acid.burn@example.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Burn"},
        {
            "op": "Add",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": boss,
        },
    )
    updated = scim.patch(f"/Users/{user_id}", update)
    assert updated.status_code == 200
    assert updated.json["emails"][0]["value"] == "acid.burn@example.com"
    assert state(session, "acid.burn@example.com") == (UserStatus.ACTIVE, "Entra Person")
    # Groups: create with the Microsoft URN, lookup, membership check, add, remove.
    group = scim.post("/Groups", entra_create_group("Plague", "plague-ext")).json
    assert (
        lookup(scim, "Groups", 'displayName eq "Plague"', "&excludedAttributes=members")[
            "Resources"
        ][0]["id"]
        == group["id"]
    )
    member = f'id eq "{group["id"]}" and members eq "{user_id}"'
    assert lookup(scim, "Groups", member, "&excludedAttributes=members")["totalResults"] == 0
    assert scim.patch(f"/Groups/{group['id']}", entra_members("Add", user_id)).status_code == 200
    assert lookup(scim, "Groups", member, "&excludedAttributes=members")["totalResults"] == 1
    assert scim.get(f"/Groups/{group['id']}?excludedAttributes=members").json.get("members") is None
    assert scim.patch(f"/Groups/{group['id']}", entra_members("Remove", user_id)).status_code == 200
    assert session.scalar(select(TeamMembership)) is None
    session.rollback()
    # Soft delete (unassign) is active=false, as a string when Entra's flag is off.
    disable = rfc7644_3_5_2_patch({"op": "Replace", "path": "active", "value": "False"})
    assert scim.patch(f"/Users/{user_id}", disable).json["active"] is False
    assert state(session, "acid.burn@example.com")[0] is UserStatus.REVOKED
    enable = rfc7644_3_5_2_patch({"op": "Replace", "path": "active", "value": True})
    assert scim.patch(f"/Users/{user_id}", enable).json["active"] is True
    assert state(session, "acid.burn@example.com")[0] is UserStatus.ACTIVE
    # Hard delete 30 days later.
    assert scim.delete(f"/Users/{user_id}").status_code == 204
    assert scim.delete(f"/Users/{user_id}").status_code == 404
    assert state(session, "acid.burn@example.com")[0] is UserStatus.REVOKED
    assert session.scalar(select(Team)) is not None  # the group lives on
