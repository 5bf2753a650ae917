"""SCIM Users over the domain: provisioning, lifecycle, listing, versions."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.actions import lifecycle
from models.entities import (
    AuditEvent,
    IdentityLink,
    OutboxMessage,
    Revocation,
    ScimUser,
    User,
    VirtualApiKey,
)
from models.enums import Source, UserStatus
from tests.scim.conftest import ops
from tests.scim.payloads import ENTERPRISE, okta_create_user, rfc7643_8_2_full_user
from tests.support import factories


def create(scim, email="ann@example.com", **extra):
    response = scim.post("/Users", {**okta_create_user(email), **extra})
    assert response.status_code == 201, response.json
    return response.json


def test_rfc7643_8_2_full_user_round_trips_every_attribute_but_the_password(scim):
    boss = create(scim, "boss@example.com")
    sent = rfc7643_8_2_full_user(manager=boss["id"])
    response = scim.post("/Users", sent)
    assert response.status_code == 201, response.json
    assert response.mimetype == "application/scim+json"
    body = response.json
    assert response.headers["Location"] == body["meta"]["location"]
    assert response.headers["ETag"] == body["meta"]["version"]
    assert body["userName"] == "bjensen@example.com"
    assert body["name"]["givenName"] == "Barbara"
    assert body["displayName"] == "Babs Jensen"
    assert body["title"] == "Tour Guide"
    assert body["phoneNumbers"] == [{"value": "555-555-5555", "type": "work"}]
    assert [e["value"] for e in body["emails"]] == ["bjensen@example.com", "babs@jensen.org"]
    assert body[ENTERPRISE]["employeeNumber"] == "701984"
    assert body[ENTERPRISE]["department"] == "Tour Operations"
    assert body[ENTERPRISE]["costCenter"] == "4130"
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    for key in ("name", "addresses", "phoneNumbers", "ims", "photos", "x509Certificates"):
        assert body[key] == sent[key], key
    for key in ("nickName", "profileUrl", "userType", "preferredLanguage", "locale", "timezone"):
        assert body[key] == sent[key], key
    assert body[ENTERPRISE] == {
        **sent[ENTERPRISE],
        "manager": {
            "value": boss["id"],
            "$ref": body["meta"]["location"].replace(body["id"], boss["id"]),
        },
    }
    assert "password" not in body
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"].endswith("Z")
    assert scim.get(f"/Users/{body['id']}").json == body


def test_created_user_is_active_and_audited_with_source_scim(scim, session):
    body = create(scim)
    user = session.scalar(select(User).where(User.email_key == "ann@example.com"))
    assert user.status is UserStatus.ACTIVE
    assert user.name == "Ann Okta"
    sources = set(
        session.scalars(select(AuditEvent.source).where(AuditEvent.target_id == str(user.id)))
    )
    assert sources == {Source.SCIM}
    link = session.scalar(select(IdentityLink).where(IdentityLink.user_id == user.id))
    assert (link.source, link.external_id) == (Source.SCIM, body["id"])


def test_created_user_is_pending_where_the_organisation_requires_approval(scim, session, org):
    org.settings.approval_required = True
    session.commit()
    body = create(scim)
    user = session.scalar(select(User).where(User.email_key == "ann@example.com"))
    assert user.status is UserStatus.PENDING
    assert body["active"] is True  # not revoked: the IdP's assertion stands, approval pends


def test_a_user_with_the_same_email_is_linked_not_duplicated(scim, session, org):
    existing = factories.make_user(session, org, email="Ann@Example.com", name="Ann Before")
    key = factories.make_key(session, org, owner=existing)
    session.commit()
    create(scim, "ann@example.com")
    session.expire_all()
    users = session.scalars(select(User).where(User.organisation_id == org.id)).all()
    assert [u.id for u in users] == [existing.id]
    assert session.get(VirtualApiKey, key.id).owner_user_id == existing.id
    assert session.get(User, existing.id).name == "Ann Okta"


def test_username_is_unique_case_insensitively(scim):
    create(scim, "ann@example.com")
    again = scim.post("/Users", okta_create_user("ANN@example.com", external_id="other"))
    assert again.status_code == 409
    assert again.json["scimType"] == "uniqueness"


def test_username_in_decomposed_unicode_is_the_composed_name(scim, unchanged):
    """José typed as "e" + U+0301 (NFD) is the name sent as U+00E9 (NFC): one person,
    found by either form (RFC 8265 compares usernames in NFC)."""
    composed, decomposed = "jos\u00e9@example.com", "jose\u0301@example.com"
    first = create(scim, composed)
    unchanged()
    again = scim.post("/Users", okta_create_user(decomposed, external_id="other"))
    assert again.status_code == 409, again.json
    assert again.json["scimType"] == "uniqueness"
    unchanged()
    found = scim.get(f'/Users?filter=userName eq "{decomposed}"').json["Resources"]
    assert [u["id"] for u in found] == [first["id"]]
    renamed = scim.put(f"/Users/{first['id']}", okta_create_user("RENE\u0301E@example.com"))
    assert renamed.json["userName"] == "REN\u00c9E@example.com"
    by_nfd = scim.get('/Users?filter=userName eq "rene\u0301e@example.com"').json
    assert by_nfd["totalResults"] == 1


def test_names_other_than_keys_are_kept_as_sent(scim):
    """Only the keys (userName, emails, a group's name) are composed: a givenName in NFD
    comes back as sent, and a filter in the form it was sent finds it, as on scim2-server."""
    body = okta_create_user("nfd@example.com")
    body["name"]["givenName"] = "Rene\u0301e"
    created = scim.post("/Users", body)
    assert created.status_code == 201, created.json
    assert created.json["name"]["givenName"] == "Rene\u0301e"
    found = scim.get('/Users?filter=name.givenName eq "Rene\u0301e"').json
    assert [u["id"] for u in found["Resources"]] == [created.json["id"]]


def test_deactivation_revokes_through_the_shared_operation(scim, session, org):
    body = create(scim)
    response = scim.patch(
        f"/Users/{body['id']}", ops({"op": "replace", "path": "active", "value": False})
    )
    assert response.status_code == 200
    assert response.json["active"] is False
    scim_user = session.get(ScimUser, uuid.UUID(body["id"]))
    revocation = session.scalar(select(Revocation).where(Revocation.user_id == scim_user.user_id))
    assert revocation.source is Source.SCIM
    assert revocation.reason == "SCIM active=false"
    review = session.scalar(
        select(OutboxMessage).where(OutboxMessage.task == "reviews.open_for_revocation")
    )
    assert review.kwargs == {"revocation_id": str(revocation.id)}
    assert session.get(User, scim_user.user_id).status is UserStatus.REVOKED


def test_reactivation_undoes_the_revocation(scim, session, org):
    body = create(scim)
    scim.patch(f"/Users/{body['id']}", ops({"op": "replace", "path": "active", "value": False}))
    response = scim.patch(
        f"/Users/{body['id']}", ops({"op": "replace", "path": "active", "value": True})
    )
    assert response.json["active"] is True
    revocation = session.scalar(select(Revocation))
    assert revocation.undone_at is not None


def test_disabled_users_stay_visible_to_get_and_filters(scim):
    body = create(scim)
    scim.patch(f"/Users/{body['id']}", ops({"op": "replace", "path": "active", "value": False}))
    assert scim.get(f"/Users/{body['id']}").json["active"] is False
    found = scim.get('/Users?filter=userName eq "ann@example.com"').json
    assert found["totalResults"] == 1
    assert found["Resources"][0]["active"] is False
    assert scim.get("/Users?filter=active eq false").json["totalResults"] == 1
    assert scim.get("/Users?filter=active eq true").json["totalResults"] == 0


def test_delete_revokes_marks_the_link_deleted_and_forgets_the_resource(scim, session):
    body = create(scim)
    assert scim.delete(f"/Users/{body['id']}").status_code == 204
    assert scim.get(f"/Users/{body['id']}").status_code == 404
    user = session.scalar(select(User).where(User.email_key == "ann@example.com"))
    assert user.status is UserStatus.REVOKED
    link = session.scalar(select(IdentityLink).where(IdentityLink.user_id == user.id))
    assert link.deleted_at is not None
    assert (
        session.scalar(select(Revocation).where(Revocation.user_id == user.id)).reason
        == "SCIM DELETE"
    )


def test_recreating_a_deleted_user_relinks_and_reactivates_the_same_person(scim, session):
    body = create(scim)
    scim.delete(f"/Users/{body['id']}")
    again = create(scim)
    assert again["id"] != body["id"]
    assert again["active"] is True
    assert (
        session.scalar(select(User).where(User.email_key == "ann@example.com")).status
        is UserStatus.ACTIVE
    )
    assert len(session.scalars(select(User)).all()) == 1


def test_recreating_a_deleted_user_without_active_leaves_the_person_revoked(scim, session):
    """Only a create that says `active: true` brings a revoked person back (docs/scim.md)."""
    body = create(scim)
    scim.delete(f"/Users/{body['id']}")
    silent = okta_create_user("ann@example.com")
    del silent["active"]
    response = scim.post("/Users", silent)
    assert response.status_code == 201, response.json
    assert response.json["active"] is False
    assert (
        session.scalar(select(User).where(User.email_key == "ann@example.com")).status
        is UserStatus.REVOKED
    )


def test_put_replaces_the_user(scim, session):
    body = create(scim)
    replacement = okta_create_user("ann.new@example.com")
    replacement["name"] = {"givenName": "Anne", "familyName": "New"}
    replacement["displayName"] = None
    response = scim.put(f"/Users/{body['id']}", replacement)
    assert response.status_code == 200
    assert response.json["userName"] == "ann.new@example.com"
    assert "displayName" not in response.json
    user = session.scalar(select(User))
    assert (user.email, user.name) == ("ann.new@example.com", "Anne New")


def test_list_pages_sorts_and_projects(scim):
    for n in range(5):
        create(scim, f"user{n}@example.com", externalId=f"ext-{n}")
    page = scim.get("/Users?startIndex=2&count=2&sortBy=userName&sortOrder=descending").json
    assert page["totalResults"] == 5
    assert page["startIndex"] == 2
    assert page["itemsPerPage"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["user3@example.com", "user2@example.com"]
    only = scim.get("/Users?attributes=userName,name.givenName&count=1").json["Resources"][0]
    assert set(only) == {"schemas", "id", "userName", "name"}
    assert set(only["name"]) == {"givenName"}
    without = scim.get("/Users?excludedAttributes=emails,groups&count=1").json["Resources"][0]
    assert "emails" not in without and "userName" in without
    assert scim.get("/Users?count=0").json == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 5,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_search_endpoint_takes_a_search_request(scim):
    create(scim, "a@example.com")
    create(scim, "b@example.com")
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "b"',
        "attributes": ["userName"],
    }
    found = scim.post("/Users/.search", body).json
    assert [r["userName"] for r in found["Resources"]] == ["b@example.com"]


@pytest.mark.parametrize("path", ["/Users/.search", "/Groups/.search", "/.search"])
def test_a_search_request_with_an_attribute_it_does_not_have_is_refused(scim, path):
    """RFC 7644 section 3.12: a body that does not conform to the SearchRequest schema is
    invalidSyntax (as scim2-server answers); a misspelt filter was ignored, and the answer
    listed every resource as if each matched."""
    create(scim, "a@example.com")
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filtr": 'displayName eq "Nobody"',
    }
    refused = scim.post(path, body)
    assert refused.status_code == 400, refused.json
    assert refused.json["scimType"] == "invalidSyntax"
    assert "filtr" in refused.json["detail"]
    cased = {"schemas": body["schemas"], "FILTER": body["filtr"]}  # names in any case
    assert scim.post(path, cased).json["totalResults"] == 0


def test_etags_if_match_and_if_none_match(scim):
    body = create(scim)
    version = body["meta"]["version"]
    assert scim.get(f"/Users/{body['id']}", **{"If-None-Match": version}).status_code == 304
    patch = ops({"op": "replace", "path": "displayName", "value": "Ann"})
    changed = scim.patch(f"/Users/{body['id']}", patch, **{"If-Match": version})
    assert changed.status_code == 200
    assert changed.json["meta"]["version"] != version
    stale = scim.patch(f"/Users/{body['id']}", patch, **{"If-Match": version})
    assert stale.status_code == 412
    assert scim.delete(f"/Users/{body['id']}", **{"If-Match": version}).status_code == 412
    assert scim.get(f"/Users/{body['id']}", **{"If-None-Match": version}).status_code == 200


def test_scim_does_not_undo_an_admins_revocation(scim, session, org):
    body = create(scim)
    user = session.scalar(select(User))
    lifecycle.revoke(session, user=user, actor=factories.SETUP, reason="left")
    session.commit()
    response = scim.patch(
        f"/Users/{body['id']}", ops({"op": "replace", "path": "active", "value": True})
    )
    assert response.status_code == 200
    assert response.json["active"] is False
    session.expire_all()
    assert session.get(User, user.id).status is UserStatus.REVOKED
    assert session.scalar(
        select(AuditEvent.action).where(AuditEvent.action == "user.reactivation_refused")
    )


def test_root_search_spans_users_and_groups(scim):
    create(scim, "a@example.com")
    scim.post("/Groups", {"displayName": "Team A"})
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    found = scim.post("/.search", body).json
    assert found["totalResults"] == 2
    assert [r["meta"]["resourceType"] for r in found["Resources"]] == ["User", "Group"]
    by_name = scim.post("/.search", {**body, "filter": 'displayName eq "Team A"'}).json
    assert [r["displayName"] for r in by_name["Resources"]] == ["Team A"]


def test_root_search_with_a_group_only_filter_pages_groups_from_the_start(scim):
    create(scim, "a@example.com")
    for name in ("G1", "G2"):
        scim.post("/Groups", {"displayName": name})
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "members pr or displayName pr",
        "startIndex": 1,
        "count": 1,
    }
    found = scim.post("/.search", body).json
    assert found["totalResults"] == 2
    assert [r["displayName"] for r in found["Resources"]] == ["G1"]
    bad = scim.post("/.search", {**body, "filter": "shoeSize pr"})
    assert bad.status_code == 400
    assert bad.json["scimType"] == "invalidFilter"


def test_password_is_accepted_and_discarded_on_post_put_and_patch(scim, session):
    body = create(scim)  # okta_create_user sends a password
    assert "password" not in body
    put = scim.put(f"/Users/{body['id']}", {**okta_create_user("ann@example.com"), "password": "x"})
    assert put.status_code == 200, put.json
    assert "password" not in put.json
    patched = scim.patch(
        f"/Users/{body['id']}",
        ops(
            {"op": "replace", "path": "password", "value": "n3w"},
            {"op": "add", "value": {"password": "y"}},
        ),
    )
    assert patched.status_code == 200, patched.json
    assert "password" not in patched.json
    assert patched.json["meta"]["version"] == put.json["meta"]["version"]
    stored = session.scalar(select(ScimUser.extra).where(ScimUser.id == uuid.UUID(body["id"])))
    assert "password" not in str(stored)


def test_patch_of_name_middle_name_and_pass_through_attributes(scim):
    body = create(scim)
    patched = scim.patch(
        f"/Users/{body['id']}",
        ops(
            {"op": "add", "path": "name.middleName", "value": "Q"},
            {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"},
            {"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "42"},
        ),
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["name"]["middleName"] == "Q"
    assert patched.json["phoneNumbers"] == [{"type": "mobile", "value": "+1 555"}]
    assert patched.json[ENTERPRISE]["costCenter"] == "42"


def test_pass_through_values_are_checked_against_the_schema(scim, unchanged):
    unchanged()
    for wrong in (
        {"title": {"a": 1}},
        {"phoneNumbers": ["555"]},
        {"addresses": [{"primary": "maybe"}]},
        {"phoneNumbers": [{"value": "1", "primary": True}, {"value": "2", "primary": True}]},
    ):
        response = scim.post("/Users", {**okta_create_user("bad@example.com"), **wrong})
        assert response.status_code == 400, wrong
        assert response.json["scimType"] == "invalidValue"
    unchanged()


def test_manager_must_be_a_user_of_the_same_organisation(scim, session, unchanged):
    other_org = factories.make_org(session, "Other")
    session.commit()
    from tests.scim.conftest import ScimClient

    other = ScimClient(scim.client, factories.scim_token(session, other_org))
    session.commit()
    stranger = other.post("/Users", okta_create_user("stranger@example.com")).json["id"]
    body = create(scim)
    unchanged()
    for manager in (stranger, "not-an-id", "26118915-6090-4610-87e4-49d8ca9f808d"):
        patch = ops({"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": manager}})
        response = scim.patch(f"/Users/{body['id']}", patch)
        assert response.status_code == 400, manager
        assert response.json["scimType"] == "invalidValue"
        created = scim.post(
            "/Users",
            {**okta_create_user("new@example.com"), ENTERPRISE: {"manager": {"value": manager}}},
        )
        assert created.status_code == 400
    unchanged()


def test_a_deleted_user_is_nobodys_manager_any_more(scim, session):
    """A manager is named by SCIM id and must be a user of the organisation (a POST or PATCH
    naming an unknown id is 400); a DELETE left the id in the reports' manager.value, where a
    GET showed it and a filter matched it, pointing at a resource that answers 404 (RFC 7644
    section 3.6). The reports lose the manager, each audited, meta.lastModified moving, as a
    group's members lose the deleted user."""
    boss = create(scim, "boss@example.com")
    manager = {ENTERPRISE: {"manager": {"value": boss["id"]}}}
    report = create(scim, "report@example.com", **manager)
    shouted = {ENTERPRISE: {"manager": {"value": boss["id"].upper()}}}
    second = create(scim, "second@example.com", **shouted)
    other = create(scim, "other@example.com")
    assert scim.delete(f"/Users/{boss['id']}").status_code == 204
    read = scim.get(f"/Users/{report['id']}").json
    assert "manager" not in read.get(ENTERPRISE, {})
    assert read["meta"]["lastModified"] > report["meta"]["lastModified"]
    assert read["meta"]["version"] != report["meta"]["version"]
    assert "manager" not in scim.get(f"/Users/{second['id']}").json.get(ENTERPRISE, {})
    found = scim.get(f'/Users?filter={ENTERPRISE}:manager.value eq "{boss["id"]}"').json
    assert found["totalResults"] == 0
    assert scim.get(f"/Users/{other['id']}").json["meta"] == other["meta"]
    user_id = session.scalar(select(ScimUser.user_id).where(ScimUser.id == uuid.UUID(report["id"])))
    updated = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "scim.user.updated", AuditEvent.target_id == str(user_id)
        )
    ).one()
    assert (updated.before["manager"], updated.after["manager"]) == (boss["id"], None)
    assert updated.source is Source.SCIM
    session.commit()


def test_deleting_a_user_who_is_their_own_manager_audits_only_the_delete(scim, session):
    """The reports cleared on DELETE are the others: the deleted user's record was also
    'updated' (manager cleared) after its scim.user.deleted event."""
    ann = create(scim, "ann@example.com")
    own = {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": ann["id"]}}
    assert scim.patch(f"/Users/{ann['id']}", ops(own)).status_code == 200
    user_id = session.scalar(select(ScimUser.user_id).where(ScimUser.id == uuid.UUID(ann["id"])))
    session.commit()
    assert scim.delete(f"/Users/{ann['id']}").status_code == 204
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.target_id == str(user_id), AuditEvent.action.like("scim.user.%"))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    assert actions[-1] == "scim.user.deleted"
    session.commit()


def test_a_deleted_persons_email_relinks_on_create_and_is_refused_to_another_user(
    scim, session, unchanged
):
    """One rule for every source (models.actions.identities, users.edit_user): a person is
    found by email when a new identity arrives, never by an existing one changing its email.
    A PUT or PATCH giving Bob the email of Ann, deleted and so revoked, is 409 `uniqueness`
    and changes nothing (it would hand Bob's SCIM user to Ann's person, or take Ann's email
    from the person a rehire must find); the detail says why. A create with it relinks Ann."""
    ann = create(scim, "ann@example.com")
    assert scim.delete(f"/Users/{ann['id']}").status_code == 204
    bob = create(scim, "bob@example.com")
    taking = okta_create_user("bob@example.com")
    taking["emails"] = [{"value": "ann@example.com", "type": "work", "primary": True}]
    work_email = {
        "op": "replace",
        "path": 'emails[type eq "work"].value',
        "value": "ann@example.com",
    }
    unchanged()
    for refused in (
        scim.put(f"/Users/{bob['id']}", taking),
        scim.patch(f"/Users/{bob['id']}", ops(work_email)),
        scim.patch(
            f"/Users/{bob['id']}", ops({"op": "replace", "value": {"emails": taking["emails"]}})
        ),
    ):
        assert (refused.status_code, refused.json["scimType"]) == (409, "uniqueness")
        assert "belongs to a revoked person" in refused.json["detail"]
    unchanged()
    again = scim.post(
        "/Users", {**okta_create_user("ann.again@example.com"), "emails": taking["emails"]}
    )
    assert again.status_code == 201, again.json
    person = session.scalar(select(User).where(User.email_key == "ann@example.com"))
    assert (
        session.scalar(select(ScimUser.user_id).where(ScimUser.id == uuid.UUID(again.json["id"])))
        == person.id
    )
    assert person.status is UserStatus.ACTIVE
