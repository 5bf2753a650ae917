"""Bad input of every kind gets SCIM error JSON with the right status and scimType, never a
500; tokens decide the tenant and nothing crosses organisations."""

from __future__ import annotations

import gzip
import json
from urllib.parse import urlencode

import pytest

from tests.scim.conftest import ScimClient, ops
from tests.scim.payloads import okta_create_group, okta_create_user
from tests.support import factories

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_error(response, status, scim_type=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body = response.json
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body["detail"]
    assert body.get("scimType") == scim_type
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def ann(scim):
    return scim.post("/Users", okta_create_user("ann@example.com")).json


def test_401_without_a_token_or_with_a_wrong_one(client, scim_secret):
    assert_error(client.get("/scim/v2/Users"), 401)
    wrong = client.get("/scim/v2/Users", headers={"Authorization": "Bearer odk_scim_nope"})
    assert_error(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    basic = client.get("/scim/v2/Users", headers={"Authorization": f"Basic {scim_secret}"})
    assert_error(basic, 401)


def test_an_admin_token_is_not_a_scim_token(client, session, org):
    admin = factories.make_user(session, org, email="admin@example.com")
    secret = factories.admin_token(session, org, admin)
    session.commit()
    assert_error(client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {secret}"}), 401)


def test_another_organisations_resources_are_not_found(scim, client, session, ann):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    other_org = factories.make_org(session, "Other")
    other = ScimClient(client, factories.scim_token(session, other_org))
    session.commit()
    for path in (f"/Users/{ann['id']}", f"/Groups/{group['id']}"):
        assert_error(other.get(path), 404)
        assert_error(
            other.patch(path, ops({"op": "replace", "path": "displayName", "value": "x"})), 404
        )
        assert_error(other.put(path, okta_create_user("x@example.com")), 404)
        assert_error(other.delete(path), 404)
    assert other.get("/Users").json["totalResults"] == 0
    assert other.get('/Users?filter=userName eq "ann@example.com"').json["totalResults"] == 0
    assert other.get("/Groups").json["totalResults"] == 0
    member = other.post(
        "/Groups", {**okta_create_group("Steal"), "members": [{"value": ann["id"]}]}
    )
    assert_error(member, 400, "invalidValue")
    # The same userName is free in another organisation.
    assert other.post("/Users", okta_create_user("ann2@example.com")).status_code == 201


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'userName xx "a"',
        'userName eq "a" and',
        "((userName pr)",
        'emails[type eq "work"',
        'emails[type eq "work"].value eq',
        "userName eq 'single'",
        "§",
    ],
)
def test_malformed_filters_are_invalid_filter(scim, expression):
    assert_error(scim.get("/Users?" + urlencode({"filter": expression})), 400, "invalidFilter")


@pytest.mark.parametrize(
    "expression",
    [
        'password eq "x"',
        'name.nickName eq "x"',
        'addresses pr "x"',
        'emails.display eq "x"',
        "active gt true",
        'active eq "yes"',
        'meta.created gt "yesterday"',
        "userName eq 5",
        'emails[value eq "a"][type eq "b"] pr',
        'id co "1"',
    ],
)
def test_unsupported_attributes_and_comparisons_are_invalid_filter(scim, expression):
    assert_error(scim.get("/Users?" + urlencode({"filter": expression})), 400, "invalidFilter")


def test_group_filter_on_a_user_attribute_is_invalid_filter(scim):
    assert_error(scim.get('/Groups?filter=userName eq "a"'), 400, "invalidFilter")


BAD_PATCHES = [
    ({"Operations": []}, "invalidSyntax"),
    ({"Operations": "replace"}, "invalidSyntax"),
    ({"schemas": []}, "invalidSyntax"),
    ({"Operations": [{"op": "move", "path": "userName", "value": "x"}]}, "invalidSyntax"),
    ({"Operations": [{"path": "userName"}]}, "invalidSyntax"),
    ({"Operations": ["replace"]}, "invalidSyntax"),
    ({"Operations": [{"op": "remove"}]}, "noTarget"),
    ({"Operations": [{"op": "replace", "path": "bogus", "value": 1}]}, "invalidPath"),
    ({"Operations": [{"op": "replace", "path": "name.bogus", "value": 1}]}, "invalidPath"),
    ({"Operations": [{"op": "replace", "path": "emails[", "value": 1}]}, "invalidPath"),
    (
        {"Operations": [{"op": "replace", "path": 'emails[type xx "w"].value', "value": 1}]},
        "invalidFilter",
    ),
    ({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}, "mutability"),
    ({"Operations": [{"op": "replace", "path": "groups", "value": []}]}, "mutability"),
    ({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}, "invalidValue"),
    ({"Operations": [{"op": "replace", "path": "userName", "value": 7.5}]}, "invalidValue"),
    # RFC 7644 section 3.5.2.2: a required attribute removed is mutability
    ({"Operations": [{"op": "remove", "path": "userName"}]}, "mutability"),
    ({"Operations": [{"op": "remove", "path": "active"}]}, "mutability"),
    (
        {"Operations": [{"op": "replace", "path": 'emails[shoe eq "x"].value', "value": "x@y.io"}]},
        "invalidFilter",
    ),
    (
        {"Operations": [{"op": "add", "path": 'phoneNumbers[kind eq "x"]', "value": {}}]},
        "invalidFilter",
    ),
    ({"Operations": [{"op": "replace", "value": "not an object"}]}, "invalidValue"),
    (
        {"Operations": [{"op": "replace", "path": 'emails[type co "w"].value', "value": "a@b.c"}]},
        None,
    ),
    (
        {"Operations": [{"op": "replace", "path": 'emails[type co "x"].value', "value": "a@b.c"}]},
        "noTarget",
    ),
    (
        {"Operations": [{"op": "replace", "path": "emails", "value": [{"value": "bad"}]}]},
        "invalidValue",
    ),
]


def test_bad_patches_are_refused_and_change_nothing(scim, ann):
    for body, scim_type in BAD_PATCHES:
        response = scim.patch(f"/Users/{ann['id']}", body)
        if scim_type is None:
            assert response.status_code == 200
            ann = response.json
            continue
        assert_error(response, 400, scim_type)
        assert scim.get(f"/Users/{ann['id']}").json == ann, body


USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
TITLE = [{"op": "replace", "path": "title", "value": "Boss"}]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/Users", {"schemas": [GROUP], "userName": "g@example.com"}),
        ("POST", "/Users", {"schemas": USER, "userName": "s@example.com"}),
        ("POST", "/Groups", {"schemas": [USER], "displayName": "Users"}),
        ("PUT", "/Users/{id}", {"schemas": ["urn:example:other"], "userName": "ann@example.com"}),
        ("PATCH", "/Users/{id}", {"schemas": [USER], "Operations": TITLE}),
        ("POST", "/Users/.search", {"schemas": [USER], "count": 1}),
        ("POST", "/.search", {"schemas": [GROUP], "count": 1}),
    ],
)
def test_a_body_listing_schemas_without_its_own_is_invalid_syntax(
    scim, ann, unchanged, method, path, body
):
    """RFC 7643 section 3 and RFC 7644 section 3.5.2: `schemas` names what the body is; a
    body may leave it out, but one naming another resource is refused (so scim2-server)."""
    unchanged()
    response = scim.request(method, path.format(id=ann["id"]), body)
    assert_error(response, 400, "invalidSyntax")
    unchanged()


def test_patch_is_atomic_all_operations_or_none(scim, ann):
    response = scim.patch(
        f"/Users/{ann['id']}",
        ops(
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "bogus", "value": "x"},
        ),
    )
    assert_error(response, 400, "invalidPath")
    assert scim.get(f"/Users/{ann['id']}").json == ann


@pytest.mark.parametrize(
    ("raw", "scim_type"),
    [
        (b"{not json", "invalidSyntax"),
        (b"\xff\xfe", "invalidSyntax"),
        (b"", "invalidSyntax"),
        # Well-formed JSON but no User: the body does not conform to the request schema
        # (RFC 7644 section 3.12), as a PatchOp or SearchRequest that is no object.
        (b"[]", "invalidSyntax"),
        (b'"text"', "invalidSyntax"),
        (b"[" * 100000 + b"]" * 100000, "invalidSyntax"),
    ],
)
def test_unreadable_bodies(scim, raw, scim_type):
    response = scim.client.post(
        "/scim/v2/Users",
        data=raw,
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"},
    )
    assert_error(response, 400, scim_type)


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": []},
        {"userName": ""},
        {"userName": "no-email-here"},
        {"userName": "a@example.com", "emails": "oops"},
        {"userName": "a@example.com", "emails": "a@example.com"},
        {"userName": "a@example.com", "emails": [{"value": "not-an-email"}]},
        {
            "userName": "a@example.com",
            "emails": [{"value": "a@x.io", "primary": True}, {"value": "b@x.io", "primary": True}],
        },
        {"userName": "a@example.com", "name": "A"},
        {"userName": "a@example.com", "active": "sometimes"},
        {"userName": "x" * 300 + "@example.com"},
        {"userName": "a\x00@example.com"},
        {"userName": ["a@example.com"]},
    ],
)
def test_invalid_users_are_invalid_value(scim, body):
    assert_error(scim.post("/Users", body), 400, "invalidValue")


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": []},
        {"displayName": ""},
        {"displayName": "G", "members": "x"},
        {"displayName": "G", "members": [{"display": "no value"}]},
        {"displayName": "G", "members": [{"value": "not-a-uuid"}]},
        {"displayName": "G", "members": [{"value": "x", "type": "Group"}]},
        {"displayName": "G" * 300},
    ],
)
def test_invalid_groups_are_invalid_value(scim, body):
    assert_error(scim.post("/Groups", body), 400, "invalidValue")


@pytest.mark.parametrize(
    "query",
    [
        "startIndex=abc",
        "count=ten",
        "sortOrder=sideways",
        "attributes=",
        "count=-5",
        "startIndex=-3",
    ],
)
def test_paging_parameters(scim, ann, query):
    response = scim.get(f"/Users?{query}")
    if query.startswith(("startIndex=abc", "count=ten", "sortOrder")):
        assert_error(response, 400, "invalidValue")
    else:
        assert response.status_code == 200  # negative values are clamped (RFC 7644 3.4.2.4)


def test_unknown_route_method_not_allowed_and_ids_are_scim_errors(scim):
    assert_error(scim.get("/Nope"), 404)
    assert_error(scim.get("/Users/not-a-uuid"), 404)
    assert_error(scim.request("POST", "/ServiceProviderConfig", {}), 405)
    assert_error(scim.request("PATCH", "/Users", {}), 405)
    assert_error(scim.get("/Schemas/urn:nope"), 404)
    assert_error(scim.get("/ResourceTypes/Device"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ],
)
def test_a_filter_on_a_discovery_endpoint_is_403(scim, path):
    """RFC 7644 section 4: a filter there SHOULD be 403 (scim2-server's answer), not
    ignored with every resource listed as if it matched."""
    assert_error(scim.get(path + "?" + urlencode({"filter": 'id eq "x"'})), 403)
    assert scim.get(path).status_code == 200


def test_attributes_and_excluded_attributes_together_are_invalid_value(scim, ann, unchanged):
    """RFC 7644 section 3.9: the two parameters are mutually exclusive (scim2-server: 400)."""
    both = "attributes=userName&excludedAttributes=title"
    assert_error(scim.get(f"/Users?{both}"), 400, "invalidValue")
    assert_error(scim.get(f"/Users/{ann['id']}?{both}"), 400, "invalidValue")
    search = {"attributes": ["userName"], "excludedAttributes": ["title"]}
    assert_error(scim.post("/Users/.search", search), 400, "invalidValue")
    unchanged()
    title = ops({"op": "replace", "path": "title", "value": "Boss"})
    assert_error(scim.patch(f"/Users/{ann['id']}?{both}", title), 400, "invalidValue")
    unchanged()


def test_oversized_bodies_are_413(scim, settings):
    huge = {"userName": "a@example.com", "title": "x" * (settings.max_body_bytes + 10)}
    assert_error(scim.post("/Users", huge), 413)


def test_too_large_a_count_is_capped(scim, ann):
    page = scim.get("/Users?count=100000").json
    assert page["itemsPerPage"] == 1


def test_unexpected_errors_are_scim_json_without_a_traceback(scim, monkeypatch):
    from webhooks import scim_provider as provider

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(provider, "service_provider", broken)
    response = scim.get("/ServiceProviderConfig")
    assert_error(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)


def test_plain_application_json_is_accepted(scim):
    response = scim.post(
        "/Users", okta_create_user("json@example.com"), **{"Content-Type": "application/json"}
    )
    assert response.status_code == 201
    assert response.mimetype == "application/scim+json"


def test_a_lost_race_on_a_unique_key_is_409_uniqueness(scim, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from webhooks import scim_provider as provider

    def raced(*_args, **_kwargs):
        raise IntegrityError("INSERT INTO scim_users ...", {}, Exception("duplicate key"))

    monkeypatch.setattr(provider, "create_user", raced)
    response = scim.post("/Users", okta_create_user("race@example.com"))
    assert_error(response, 409, "uniqueness")
    assert "INSERT" not in response.get_data(as_text=True)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/Me", "/Me/x", "/Bulk"])
def test_me_and_bulk_are_501_not_implemented(scim, path, method):
    """RFC 7644 section 3.11 (/Me SHOULD be 501 when unsupported) and 3.12 (501 for an
    operation not supported); both were 404, as if the URL were mistyped."""
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}
    response = scim.request(method, path, body if method in ("POST", "PUT", "PATCH") else None)
    assert_error(response, 501)


def test_me_and_bulk_still_need_a_token(client):
    assert_error(client.get("/scim/v2/Me"), 401)
    assert_error(client.post("/scim/v2/Bulk", json={}), 401)


def test_a_204_carries_no_content_type(scim, ann):
    response = scim.delete(f"/Users/{ann['id']}")
    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, identity"])
def test_a_compressed_body_is_415_and_stores_nothing(scim, unchanged, coding):
    """No IdP compresses its requests, but a proxy may: the body was read as if it were plain
    JSON (400 'not valid UTF-8' for gzip, or worse for a coding whose bytes parse). RFC 9110
    section 15.5.16: 415, with Accept-Encoding saying what would do."""
    raw = gzip.compress(json.dumps(okta_create_user("gz@example.com")).encode())
    headers = {
        "Authorization": f"Bearer {scim.token}",
        "Content-Type": "application/scim+json",
        "Content-Encoding": coding,
    }
    unchanged()
    response = scim.client.post("/scim/v2/Users", data=raw, headers=headers)
    assert_error(response, 415)
    assert response.headers["Accept-Encoding"] == "identity"
    unchanged()


def test_an_identity_content_encoding_is_read_as_it_is(scim):
    body = okta_create_user("plain@example.com")
    assert scim.post("/Users", body, **{"Content-Encoding": "identity"}).status_code == 201


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_search_is_post_only_other_methods_are_405(scim, unchanged, resource, method):
    """RFC 7644 section 3.4.3: /.search takes POST. A GET was read as the resource whose id
    is ".search" (404, as if the route did not exist), a DELETE as deleting it."""
    unchanged()
    response = scim.request(
        method, f"/{resource}/.search", {} if method in ("PUT", "PATCH") else None
    )
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]
    assert "GET" not in response.headers["Allow"]
    unchanged()


@pytest.mark.parametrize("path", ["/Users", "/Users/x", "/Groups/x", "/Users/.search", "/Schemas"])
def test_options_says_the_allowed_methods_without_a_body(scim, path):
    """It answered 200 with an empty text/html body."""
    response = scim.request("OPTIONS", path)
    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers
    assert "OPTIONS" in response.headers["Allow"]


def test_options_still_needs_a_token(client):
    assert_error(client.options("/scim/v2/Users"), 401)


def test_the_documentation_uri_is_the_configured_one_or_left_out(scim, app, monkeypatch):
    """documentationUri is optional (RFC 7643 section 5): it named PUBLIC_BASE_URL/docs/scim,
    which this service does not serve (a dead link, and `//` after a trailing slash)."""
    from webhooks.context import app_state

    config = scim.get("/ServiceProviderConfig").json
    assert "documentationUri" not in config
    assert all("documentationUri" not in s for s in config["authenticationSchemes"])

    with app.app_context():
        wiki = "https://wiki.example.com/odock-scim"
        monkeypatch.setattr(app_state().settings, "scim_documentation_url", wiki)
    config = scim.get("/ServiceProviderConfig").json
    assert config["documentationUri"] == "https://wiki.example.com/odock-scim"
    assert config["authenticationSchemes"][0]["documentationUri"] == config["documentationUri"]


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "text/xml"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_that_is_not_json_by_its_type_is_415_and_changes_nothing(
    scim, ann, unchanged, method, content_type
):
    """RFC 7644 section 3.8: SCIM bodies are application/scim+json (application/json is
    taken too). A body said to be XML was parsed as JSON anyway and applied (scim2-server
    answers 415)."""
    bodies = {
        "POST": okta_create_user("xml@example.com"),
        "PUT": {**ann, "displayName": "From XML"},
        "PATCH": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "From XML"}],
        },
    }
    path = "/Users" if method == "POST" else f"/Users/{ann['id']}"
    unchanged()
    response = scim.client.open(
        scim.base + path,
        method=method,
        data=json.dumps(bodies[method]),
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": content_type},
    )
    assert_error(response, 415)
    unchanged()
    for n, accepted in enumerate(("application/json", "application/scim+json; charset=utf-8")):
        body = okta_create_user(f"json{n}@example.com") if method == "POST" else bodies[method]
        answer = scim.request(method, path, body, **{"Content-Type": accepted})
        assert answer.status_code in (200, 201), answer.json
