"""RFC 7644 semantics one rule at a time: caseExact per attribute, presence, escapes,
sorting, projections by URN, versions of the resource (not of the projection),
lastModified, If-None-Match on writes, locations from PUBLIC_BASE_URL."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from models.base import utcnow
from tests.scim.conftest import ops
from tests.scim.payloads import ENTERPRISE, GROUP, USER

PEOPLE = [
    # userName, givenName, externalId, employeeNumber, title, displayName, primary email?
    ("emile@example.com", "ÉMILE", "Ext-1", "AB-1", "Boss", "zed", True),
    ("ann@example.com", "ann", "ext-2", "ab-2", None, "Ann", None),
    ("bob@example.com", "Bob", None, None, 'Say "hi"', None, False),
    ("cid@example.com", "cid", "EXT-3", "Ab-3", "boss", "bob", True),
]


@pytest.fixture
def people(scim):
    ids = {}
    for user_name, given, external, number, title, display, primary in PEOPLE:
        email = {"value": user_name, "type": "work"}
        if primary is not None:
            email["primary"] = primary
        body = {
            "schemas": [USER, ENTERPRISE],
            "userName": user_name,
            "name": {"givenName": given},
            "emails": [email],
            "externalId": external,
            "title": title,
            "displayName": display,
            ENTERPRISE: {"employeeNumber": number},
        }
        response = scim.post("/Users", {k: v for k, v in body.items() if v is not None})
        assert response.status_code == 201, response.json
        ids[user_name] = response.json["id"]
    return ids


def found(scim, **query):
    response = scim.get("/Users?" + urlencode(query))
    assert response.status_code == 200, response.json
    return [r["userName"].split("@")[0] for r in response.json["Resources"]]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('externalId sw "ext"', ["ann"]),  # caseExact: true
        ('externalId eq "EXT-3"', ["cid"]),
        ('externalId co "XT"', ["cid"]),
        ('id sw "0"', None),  # id: eq and ne only (400)
        ('userName sw "EM"', ["emile"]),  # caseExact: false
        (f'{ENTERPRISE}:employeeNumber eq "ab-1"', ["emile"]),  # RFC 7643 4.3: caseExact false
        ('name.givenName sw "é"', ["emile"]),  # non-ASCII folding on SQLite too
        ('name.givenName eq "émile"', ["emile"]),
        ('title eq "BOSS"', ["emile", "cid"]),
        ("emails.primary pr", ["emile", "bob", "cid"]),  # absent is not present
        ("emails[primary eq false]", ["bob"]),  # absent is not false either (as PATCH reads it)
        ("emails.primary ne false", ["emile", "ann", "cid"]),
        ('title eq "Say \\"hi\\""', ["bob"]),  # escaped quotes
        ('title co "\\""', ["bob"]),
        ('not (title eq "boss")', ["ann", "bob"]),  # absent title: not(false)
        ("name pr", ["emile", "ann", "bob", "cid"]),
        # RFC 7644 section 3.4.2.2's example (400 before); bob has no enterprise attribute
        (f'schemas eq "{ENTERPRISE}"', ["emile", "ann", "cid"]),
        (f'not (schemas eq "{ENTERPRISE.upper()}")', ["bob"]),
        (f'schemas eq "{USER}" and schemas co "enterprise"', ["emile", "ann", "cid"]),
    ],
)
def test_filters_follow_each_attributes_rules(scim, people, expression, expected):
    response = scim.get("/Users?" + urlencode({"filter": expression}))
    if expected is None:
        assert response.status_code == 400
        assert response.json["scimType"] == "invalidFilter"
        return
    assert response.status_code == 200, response.json
    assert sorted(r["userName"].split("@")[0] for r in response.json["Resources"]) == sorted(
        expected
    )


@pytest.mark.parametrize(
    ("sort_by", "ascending", "descending"),
    [
        # case-insensitive; missing values last ascending, first descending
        ("displayName", ["ann", "cid", "emile", "bob"], ["bob", "emile", "cid", "ann"]),
        # ties ("Boss", "boss") in order of creation both ways
        ("title", ["emile", "cid", "bob", "ann"], ["ann", "bob", "emile", "cid"]),
        # case-exact: "EXT-3" < "Ext-1" < "ext-2"
        ("externalId", ["cid", "emile", "ann", "bob"], ["bob", "ann", "emile", "cid"]),
        (
            f"{ENTERPRISE}:employeeNumber",
            ["emile", "ann", "cid", "bob"],
            ["bob", "cid", "ann", "emile"],
        ),
        # "émile" folds to lower case and sorts after the ASCII letters
        ("name.givenName", ["ann", "bob", "cid", "emile"], ["emile", "cid", "bob", "ann"]),
        ("emails", ["ann", "bob", "cid", "emile"], ["emile", "cid", "bob", "ann"]),
        ("emails.value", ["ann", "bob", "cid", "emile"], ["emile", "cid", "bob", "ann"]),
        ("active", ["emile", "ann", "bob", "cid"], ["emile", "ann", "bob", "cid"]),
    ],
)
def test_sort_by_every_sortable_attribute_in_rfc_order(
    scim, people, sort_by, ascending, descending
):
    assert found(scim, sortBy=sort_by) == ascending
    assert found(scim, sortBy=sort_by, sortOrder="descending") == descending


@pytest.mark.parametrize(
    "value_filter",
    [
        "type eq 5",
        "type eq true",
        "type co 5",
        'primary eq "x"',
        "primary eq 1",
        "primary gt true",
        "value gt null",
    ],
)
def test_a_patch_value_filter_refuses_what_a_query_filter_refuses(
    scim, people, unchanged, value_filter
):
    """RFC 7644 section 3.5.2 reads a value path's filter as section 3.4.2.2 does: a string
    sub-attribute compared with a number or boolean, a boolean with anything but true or
    false (or Entra ID's "True"/"False"), is invalidFilter, in a PATCH path as in a query
    (as scim2-server answers). The path matched nothing: a remove answered 200, a replace
    read the filter's number as a value to make (invalidValue)."""
    query = scim.get("/Users?" + urlencode({"filter": f"emails[{value_filter}]"}))
    assert query.status_code == 400, query.json
    assert query.json["scimType"] == "invalidFilter"
    user = f"/Users/{people['ann@example.com']}"
    unchanged()
    for operation in (
        {"op": "remove", "path": f"emails[{value_filter}]"},
        {"op": "replace", "path": f"emails[{value_filter}].value", "value": "x@example.com"},
        {"op": "add", "path": f"emails[{value_filter}]", "value": {"value": "x@example.com"}},
    ):
        refused = scim.patch(user, ops(operation))
        assert refused.status_code == 400, (operation, refused.json)
        assert refused.json["scimType"] == "invalidFilter", (operation, refused.json)
    unchanged()


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff"])
def test_escaped_nul_or_lone_surrogate_in_a_filter_is_invalid_value(scim, people, escape):
    response = scim.get("/Users?" + urlencode({"filter": f'title eq "a{escape}b"'}))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"


def test_unknown_sort_by_is_invalid_value(scim, people):
    for sort_by in ("nope", "groups", "name", "password"):
        response = scim.get("/Users?" + urlencode({"sortBy": sort_by}))
        assert response.status_code == 400, sort_by
        assert response.json["scimType"] == "invalidValue"


def root_search(scim, **body):
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], **body}
    response = scim.post("/.search", search)
    assert response.status_code == 200, response.json
    return [r.get("userName", r.get("displayName")) for r in response.json["Resources"]]


def test_a_root_search_sorts_by_an_attribute_only_one_resource_type_has(scim, people):
    """RFC 7644 section 3.4.2.3: resources with no value for sortBy come last when ascending
    and first when descending. A root search sorted by userName (or members) was a 400,
    because groups (users) cannot sort by it."""
    assert scim.post("/Groups", {"schemas": [GROUP], "displayName": "Ops"}).status_code == 201
    users = sorted(people, key=str.lower)
    assert root_search(scim, sortBy="userName", attributes=["userName", "displayName"]) == [
        *users,
        "Ops",
    ]
    assert root_search(
        scim, sortBy="userName", sortOrder="descending", attributes=["userName", "displayName"]
    ) == ["Ops", *reversed(users)]
    shown = ["userName", "displayName"]
    page = root_search(scim, sortBy="userName", startIndex=4, count=2, attributes=shown)
    assert page == [users[3], "Ops"]
    assert root_search(scim, sortBy="userName", filter='userName sw "a"') == ["ann@example.com"]
    refused = scim.post(
        "/.search",
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "sortBy": "shoe"},
    )
    assert refused.status_code == 400
    assert refused.json["scimType"] == "invalidValue"


def test_a_root_search_sorted_by_an_attribute_both_types_have_is_one_order(scim, people):
    """RFC 7644 section 3.4.2.3 sorts the whole answer: users and groups by displayName in
    one order (case-insensitive, no value last ascending and first descending), paged
    through that order, totalResults both types'. It listed the users, then the groups."""
    for name in ("Beta", "Ops", "apple"):
        body = {"schemas": [GROUP], "displayName": name}
        assert scim.post("/Groups", body).status_code == 201
    shown = ["userName", "displayName"]
    merged = ["ann@example.com", "apple", "Beta", "cid@example.com", "Ops", "emile@example.com"]
    merged.append("bob@example.com")  # no displayName
    assert root_search(scim, sortBy="displayName", attributes=shown) == merged
    descending = root_search(scim, sortBy="displayName", sortOrder="descending", attributes=shown)
    assert descending == [merged[-1], *reversed(merged[:-1])]
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    paged = {**search, "sortBy": "displayName", "startIndex": 3, "count": 3, "attributes": shown}
    page = scim.post("/.search", paged).json
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (7, 3, 3)
    assert [r.get("userName", r.get("displayName")) for r in page["Resources"]] == merged[2:5]
    last = scim.post("/.search", {**search, "sortBy": "displayName", "startIndex": 6}).json
    assert last["totalResults"] == 7
    assert [r.get("userName", r.get("displayName")) for r in last["Resources"]] == merged[5:]
    by_filter = root_search(scim, sortBy="displayName", filter='displayName sw "b"')
    assert by_filter == ["Beta", "cid@example.com"]
    for sort_by in ("id", "externalId", "meta.created", "meta.lastModified"):
        for order in ("ascending", "descending"):
            listed = root_search(scim, sortBy=sort_by, sortOrder=order, attributes=shown)
            assert sorted(listed) == sorted(merged)
    assert root_search(scim, sortBy="displayName", filter='userName sw "a"') == ["ann@example.com"]


def test_projections_by_full_urn_and_extension_urn(scim, people):
    emile = people["emile@example.com"]
    full = scim.get(f"/Users/{emile}?attributes={USER}:name.givenName").json
    assert full["name"] == {"givenName": "ÉMILE"}
    assert "userName" not in full and full["id"] == emile
    extension = scim.get(f"/Users/{emile}?attributes={ENTERPRISE}").json
    assert extension[ENTERPRISE] == {"employeeNumber": "AB-1"}
    assert extension["schemas"] == [USER, ENTERPRISE]
    number = scim.get(f"/Users/{emile}?attributes={ENTERPRISE}:employeeNumber,title").json
    assert number[ENTERPRISE] == {"employeeNumber": "AB-1"} and number["title"] == "Boss"
    without = scim.get(f"/Users/{emile}?excludedAttributes={ENTERPRISE}").json
    assert ENTERPRISE not in without and without["schemas"] == [USER]
    assert without["title"] == "Boss"
    listed = scim.get(f"/Users?excludedAttributes={USER}:emails,{ENTERPRISE}:employeeNumber")
    assert all("emails" not in r and ENTERPRISE not in r for r in listed.json["Resources"])


def test_meta_is_returned_by_default_not_always(scim, people):
    """RFC 7643 section 3.1: meta's sub-attributes are "returned": "default", as
    scim2-server has them; the ETag header still carries the whole resource's version."""
    ann = people["ann@example.com"]
    whole = scim.get(f"/Users/{ann}")
    only_name = scim.get(f"/Users/{ann}?attributes=userName")
    assert only_name.json == {"schemas": [USER], "id": ann, "userName": "ann@example.com"}
    assert only_name.headers["ETag"] == whole.headers["ETag"]
    assert "meta" not in scim.get(f"/Users/{ann}?excludedAttributes=meta").json
    version = scim.get(f"/Users/{ann}?attributes=meta.version").json["meta"]
    assert version == {"version": whole.json["meta"]["version"]}
    listed = scim.get("/Users?" + urlencode({"attributes": "userName", "count": 1})).json
    assert set(listed["Resources"][0]) == {"schemas", "id", "userName"}


def test_writes_answer_the_projection_asked(scim, people):
    """RFC 7644 section 3.9: attributes and excludedAttributes apply to any operation that
    returns a resource, POST, PUT and PATCH included (as scim2-server answers them)."""
    ann = people["ann@example.com"]
    created = scim.post("/Users?attributes=userName", {"userName": "new@example.com"})
    assert created.status_code == 201, created.json
    assert set(created.json) == {"schemas", "id", "userName"}
    assert created.headers["Location"].endswith(created.json["id"])
    assert created.headers["ETag"] == scim.get(f"/Users/{created.json['id']}").headers["ETag"]
    body = {"schemas": [USER], "userName": "ann@example.com", "title": "Chief"}
    replaced = scim.put(f"/Users/{ann}?excludedAttributes=title,meta", body).json
    assert "title" not in replaced and "meta" not in replaced
    group = scim.post("/Groups", {"displayName": "Projected", "members": [{"value": ann}]}).json
    renamed = scim.patch(
        f"/Groups/{group['id']}?excludedAttributes=members",
        ops({"op": "replace", "path": "displayName", "value": "Renamed"}),
    )
    assert renamed.json["displayName"] == "Renamed" and "members" not in renamed.json
    assert renamed.headers["ETag"] == scim.get(f"/Groups/{group['id']}").headers["ETag"]


def test_version_is_the_resources_not_the_projections(scim, people):
    member = people["ann@example.com"]
    group = scim.post("/Groups", {"displayName": "Readers", "members": [{"value": member}]}).json
    listed = scim.get(
        "/Groups?"
        + urlencode({"excludedAttributes": "members", "filter": 'displayName eq "Readers"'})
    ).json["Resources"][0]
    assert "members" not in listed
    assert listed["meta"]["version"] == group["meta"]["version"]
    single = scim.get(f"/Groups/{group['id']}?excludedAttributes=members")
    assert single.headers["ETag"] == group["meta"]["version"]
    renamed = scim.patch(
        f"/Groups/{group['id']}",
        ops({"op": "replace", "path": "displayName", "value": "Writers"}),
        **{"If-Match": listed["meta"]["version"]},
    )
    assert renamed.status_code == 200, renamed.json
    user = scim.get('/Users?attributes=userName,meta&filter=userName eq "ann@example.com"').json
    assert (
        user["Resources"][0]["meta"]["version"]
        == scim.get(f"/Users/{member}").json["meta"]["version"]
    )


def test_last_modified_moves_with_a_deactivation(scim, people):
    cid = people["cid@example.com"]
    before = scim.get(f"/Users/{cid}").json["meta"]["lastModified"]
    since = utcnow().isoformat().replace("+00:00", "Z")
    assert found(scim, filter=f'meta.lastModified gt "{since}"') == []
    deactivated = scim.patch(f"/Users/{cid}", ops({"op": "replace", "value": {"active": False}}))
    assert deactivated.json["active"] is False
    after = deactivated.json["meta"]["lastModified"]
    assert datetime.fromisoformat(after) > datetime.fromisoformat(before)
    assert found(scim, filter=f'meta.lastModified gt "{since}"') == ["cid"]
    assert datetime.fromisoformat(after) <= datetime.now(UTC)


def test_group_last_modified_moves_with_its_members(scim, people):
    group = scim.post("/Groups", {"displayName": "Movers"}).json
    added = scim.patch(
        f"/Groups/{group['id']}",
        ops({"op": "add", "path": "members", "value": [{"value": people["bob@example.com"]}]}),
    ).json
    assert added["meta"]["lastModified"] > group["meta"]["lastModified"]
    assert added["meta"]["version"] != group["meta"]["version"]


def test_group_last_modified_moves_when_a_member_is_deleted(scim, people):
    bob = people["bob@example.com"]
    group = scim.post("/Groups", {"displayName": "Leavers", "members": [{"value": bob}]}).json
    assert scim.delete(f"/Users/{bob}").status_code == 204
    after = scim.get(f"/Groups/{group['id']}").json
    assert "members" not in after
    assert after["meta"]["lastModified"] > group["meta"]["lastModified"]
    since = group["meta"]["lastModified"]
    found = scim.get("/Groups?" + urlencode({"filter": f'meta.lastModified gt "{since}"'}))
    assert [g["id"] for g in found.json["Resources"]] == [group["id"]]


def test_if_none_match_star_on_put_of_an_existing_resource_is_412(scim, people, unchanged):
    ann = people["ann@example.com"]
    current = scim.get(f"/Users/{ann}").json
    body = {"userName": "ann@example.com", "emails": current["emails"], "title": "New"}
    unchanged()
    for tag in ("*", current["meta"]["version"]):
        response = scim.put(f"/Users/{ann}", body, **{"If-None-Match": tag})
        assert response.status_code == 412, tag
    unchanged()
    other = scim.put(f"/Users/{ann}", body, **{"If-None-Match": 'W/"other"'})
    assert other.status_code == 200


def test_locations_come_from_public_base_url_never_the_host_header(scim, people, settings):
    ann = people["ann@example.com"]
    response = scim.get(f"/Users/{ann}", Host="evil.example")
    expected = f"{settings.public_base_url}/scim/v2/Users/{ann}"
    assert response.json["meta"]["location"] == expected
    created = scim.post(
        "/Users",
        {"userName": "dee@example.com", "emails": [{"value": "dee@example.com"}]},
        Host="evil.example",
    )
    assert created.headers["Location"].startswith(settings.public_base_url + "/scim/v2/Users/")
    schemas = scim.get("/Schemas", Host="evil.example").json["Resources"]
    assert all(s["meta"]["location"].startswith(settings.public_base_url) for s in schemas)


def test_a_group_version_read_without_members_follows_its_members(scim, people):
    """Without its members the group's version still covers them (by their digest)."""
    ann, bob = people["ann@example.com"], people["bob@example.com"]
    group = scim.post("/Groups", {"displayName": "Digest", "members": [{"value": ann}]}).json

    def bare_version() -> str:
        return scim.get(f"/Groups/{group['id']}?excludedAttributes=members").headers["ETag"]

    alone = bare_version()
    assert alone == group["meta"]["version"]
    add = ops({"op": "add", "path": "members", "value": [{"value": bob}]})
    together = scim.patch(f"/Groups/{group['id']}", add).json["meta"]["version"]
    assert bare_version() == together != alone
    scim.patch(
        f"/Groups/{group['id']}", ops({"op": "remove", "path": f'members[value eq "{bob}"]'})
    )
    assert bare_version() == alone


@pytest.mark.parametrize("resource", ["user", "group"])
def test_a_get_with_a_stale_if_match_is_412(scim, people, resource):
    """RFC 9110 section 13.1.1: a false If-Match means the method is not performed, 412,
    whatever the method (scim2-server: the same). A GET ignored it and answered 200."""
    if resource == "user":
        path = f"/Users/{people['ann@example.com']}"
    else:
        group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Ops"}).json
        path = f"/Groups/{group['id']}"
    current = scim.get(path).headers["ETag"]
    stale = scim.get(path, **{"If-Match": 'W/"stale"'})
    assert stale.status_code == 412 and stale.json["status"] == "412"
    for tag in (current, "*", f'W/"stale", {current}'):
        assert scim.get(path, **{"If-Match": tag}).status_code == 200, tag
    # If-Match is evaluated first: a stale one is 412 even when If-None-Match would be 304.
    both = scim.get(path, **{"If-Match": 'W/"stale"', "If-None-Match": current})
    assert both.status_code == 412


def published_case_exact(scim, schema: str, path: str) -> bool:
    """caseExact of `attribute.sub` in the schema /Schemas publishes."""
    attributes = scim.get(f"/Schemas/{schema}").json["attributes"]
    for name in path.split("."):
        found = next(a for a in attributes if a["name"] == name)
        attributes = found.get("subAttributes", [])
    return found["caseExact"]


# The sub-attributes naming a resource by its id: RFC 7643 section 8.7.1 publishes each
# caseExact false.
REFERENCES = [
    (USER, "groups.value"),
    (USER, "groups.$ref"),
    (ENTERPRISE, "manager.value"),
    (ENTERPRISE, "manager.$ref"),
    (GROUP, "members.value"),
    (GROUP, "members.$ref"),
]


@pytest.mark.parametrize(("schema", "path"), REFERENCES)
def test_references_are_published_case_insensitive_as_rfc_7643_has_them(scim, schema, path):
    """groups.value and manager.value were published caseExact true, while the server
    took a manager (and a member) in any case."""
    assert published_case_exact(scim, schema, path) is False


def test_filters_and_writes_compare_ids_as_slash_schemas_says(scim):
    """Each reference is filtered on, and written, with the id in upper case: it names the
    resource exactly when /Schemas says caseExact false (groups.value and manager.value were
    published true: a filter in upper case found nothing, while a manager was set in upper
    case)."""
    made = [
        scim.post("/Users", {"schemas": [USER], "userName": f"r{i}@example.com"}) for i in (0, 1)
    ]
    boss, report = (m.json["id"] for m in made)
    group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Refs"}).json["id"]
    joined = scim.patch(
        f"/Groups/{group}",
        ops({"op": "add", "path": "members", "value": [{"value": report.upper()}]}),
    )
    manager = {"schemas": [USER, ENTERPRISE], "userName": "r1@example.com"}
    managed = scim.put(f"/Users/{report}", {**manager, ENTERPRISE: {"manager": boss.upper()}})
    member_caseless = not published_case_exact(scim, GROUP, "members.value")
    manager_caseless = not published_case_exact(scim, ENTERPRISE, "manager.value")
    assert (joined.status_code == 200) is member_caseless, joined.json
    assert (managed.status_code == 200) is manager_caseless, managed.json
    filters = [
        ("/Users", USER, "groups.value", group),
        ("/Users", ENTERPRISE, "manager.value", boss),
        ("/Groups", GROUP, "members.value", report),
    ]
    for endpoint, schema, path, value in filters:
        expression = f'{schema}:{path} eq "{value.upper()}"'
        answer = scim.get(f"{endpoint}?" + urlencode({"filter": expression}))
        assert answer.status_code == 200, answer.json
        caseless = not published_case_exact(scim, schema, path)
        assert (answer.json["totalResults"] == 1) is caseless, (path, answer.json)


# (multi-valued attribute, a value it holds): caseExact true and false both.
HELD = [
    ("x509Certificates", "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"),
    ("photos", "https://photos.example/Pat.jpg"),
    ("emails", "Pat@example.com"),
    ("roles", "Admin"),
]


@pytest.mark.parametrize(("attribute", "value"), HELD)
def test_a_patch_value_filter_compares_as_slash_schemas_says(scim, attribute, value):
    """A PATCH value path (`x509Certificates[value eq "…"]`) compared every string in any
    case, while a filter on the same sub-attribute and /Schemas made it case-exact: a remove
    in another case took the value."""
    body = {"schemas": [USER], "userName": "pat@example.com", attribute: [{"value": value}]}
    if attribute != "emails":
        body["emails"] = [{"value": "pat@example.com"}]
    user = scim.post("/Users", body).json["id"]
    caseless = not published_case_exact(scim, USER, f"{attribute}.value")
    listed = scim.get(
        "/Users?" + urlencode({"filter": f'{attribute}.value eq "{value.swapcase()}"'})
    )
    assert (listed.json["totalResults"] == 1) is caseless, listed.json
    path = f'{attribute}[value eq "{value.swapcase()}"]'
    if attribute == "emails":  # the user's only email cannot go: swap in another first
        other = {"op": "add", "path": "emails", "value": [{"value": "other@example.com"}]}
        assert scim.patch(f"/Users/{user}", ops(other)).status_code == 200
    scim.patch(f"/Users/{user}", ops({"op": "remove", "path": path}))
    kept = [v["value"] for v in scim.get(f"/Users/{user}").json.get(attribute, [])]
    assert (value not in kept) is caseless, kept


# A User's URLs: RFC 7643 section 8.7.1 publishes both `caseExact: false`.
URLS = ["profileUrl", "photos.value"]


@pytest.mark.parametrize("path", URLS)
def test_urls_are_published_and_filtered_case_insensitive_as_rfc_7643_has_them(scim, path):
    """profileUrl and photos.value were published caseExact true, and filtered case-exact,
    against RFC 7643 section 8.7.1: a filter on the URL in another case found nobody."""
    url = "https://Photos.Example/Pat.JPG"
    body = {
        "schemas": [USER],
        "userName": "pat@example.com",
        "emails": [{"value": "pat@example.com"}],
        "profileUrl": url,
        "photos": [{"value": url, "type": "photo"}],
    }
    assert scim.post("/Users", body).status_code == 201
    for operator, value in (("eq", url.swapcase()), ("sw", "HTTPS://PHOTOS"), ("co", "pat.jpg")):
        expression = f'{path} {operator} "{value}"'
        listed = scim.get("/Users?" + urlencode({"filter": expression}))
        assert listed.status_code == 200, listed.json
        assert listed.json["totalResults"] == 1, (expression, listed.json)
    assert published_case_exact(scim, USER, path) is False
