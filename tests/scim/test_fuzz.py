"""Property-based fuzzing of /scim/v2 (hypothesis): generated filters, PATCH bodies and
raw JSON edge cases never get a 5xx, every refusal is SCIM error JSON, and a refused write
changes nothing. Runs on whichever database the suite uses (DATABASE_URL).

Repeatable by default; see tests.support.fuzz to explore.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.scim.conftest import SCIM, SCIM_TABLES, ScimClient, ops
from tests.scim.payloads import ENTERPRISE, okta_create_group, okta_create_user
from tests.support import fuzz
from tests.support.fuzz import ANY_TEXT
from tests.support.state import database_state

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

ATTRIBUTES = [
    "userName",
    "id",
    "externalId",
    "displayName",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
    "title",
    "members",
    "members.value",
    "meta.lastModified",
    "meta.created",
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:manager.value",
    "groups.display",
    "name.middleName",
    "nickName",
    "phoneNumbers",
    "phoneNumbers.value",
    "phoneNumbers.primary",
    "addresses.locality",
    "x509Certificates.value",
    f"{ENTERPRISE}:costCenter",
    "name",
]
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Sw"]

attribute = st.one_of(
    st.sampled_from(ATTRIBUTES), st.from_regex(r"[A-Za-z$][\w.:-]{0,12}", fullmatch=True)
)
literal = st.one_of(
    ANY_TEXT.map(json.dumps),
    st.sampled_from(["true", "false", "null", "2024-01-01T00:00:00Z", '"2024-13-99"', "1e400"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
comparison = st.one_of(
    st.builds(lambda a, o, v: f"{a} {o} {v}", attribute, st.sampled_from(OPERATORS), literal),
    attribute.map(lambda a: f"{a} pr"),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", children, children),
        st.builds(lambda a, b: f"{a} or {b}", children, children),
        children.map(lambda c: f"not ({c})"),
        children.map(lambda c: f"({c})"),
        st.builds(lambda a, c: f"{a}[{c}]", attribute, children),
        st.builds(lambda a, c, s: f"{a}[{c}].{s}", attribute, children, comparison),
    )


filters = st.one_of(
    st.recursive(comparison, _combine, max_leaves=8),
    st.text(st.sampled_from('()[]"\\ .:eqandorntpr$\x00é1'), max_size=60),
    st.integers(1, 400).map(lambda n: "(" * n + 'userName eq "a"' + ")" * n),
)

json_values = fuzz.json_values(ATTRIBUTES)
paths = st.one_of(
    st.none(),
    st.sampled_from(ATTRIBUTES),
    filters.map(lambda f: f"emails[{f}]"),
    filters.map(lambda f: f"members[{f}].value"),
    ANY_TEXT,
)
operation = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "REPLACE", "move", ""])},
    optional={"path": paths, "value": json_values},
)
patch_bodies = st.one_of(
    st.lists(operation, max_size=3).map(lambda o: ops(*o)),
    st.fixed_dictionaries({"Operations": json_values}),
    json_values,
)


raw_bodies = fuzz.raw_bodies(json_values)


@pytest.fixture
def world(scim: ScimClient) -> dict[str, str]:
    ann = scim.post("/Users", okta_create_user("ann@example.com")).json
    bob = scim.post("/Users", okta_create_user("bob@example.com")).json
    group = scim.post("/Groups", {**okta_create_group("Eng"), "members": [{"value": ann["id"]}]})
    return {"ann": ann["id"], "bob": bob["id"], "group": group.json["id"]}


def assert_no_server_error(response: Any) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text
    if response.status_code >= 400:
        assert response.mimetype == "application/scim+json", text
        assert response.json["schemas"] == [ERROR] and response.json["detail"], text


def send(scim: ScimClient, method: str, path: str, body: str | bytes) -> Any:
    data = body.encode() if isinstance(body, str) else body
    headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": SCIM}
    return scim.client.open(f"/scim/v2{path}", method=method, data=data, headers=headers)


def write_changes_nothing_when_refused(scim, sessions, method: str, path: str, body: Any) -> None:
    before = database_state(sessions, SCIM_TABLES)
    response = send(scim, method, path, body)
    assert_no_server_error(response)
    if response.status_code >= 400:
        assert database_state(sessions, SCIM_TABLES) == before, response.get_data(as_text=True)


@fuzz.FUZZ
@given(filter_text=filters)
def test_no_filter_gets_a_server_error(scim, world, filter_text) -> None:
    if "\x00" not in filter_text:  # the test client cannot put NUL in a URL path; a query can
        assert_no_server_error(scim.get("/Users?filter=" + quote(filter_text)))
    for endpoint in ("/Users/.search", "/Groups/.search", "/.search"):
        assert_no_server_error(send(scim, "POST", endpoint, json.dumps({"filter": filter_text})))


@fuzz.FUZZ
@given(body=patch_bodies, target=st.sampled_from(["Users/ann", "Users/bob", "Groups/group"]))
def test_no_patch_body_gets_a_server_error_and_a_refusal_changes_nothing(
    scim, sessions, monkeypatch, world, body, target
) -> None:
    fuzz.hold_tasks(monkeypatch)
    kind, name = target.split("/")
    path = f"/{kind}/{world[name]}"
    write_changes_nothing_when_refused(scim, sessions, "PATCH", path, json.dumps(body))


@fuzz.FUZZ
@given(
    body=raw_bodies,
    request=st.sampled_from(
        [
            ("POST", "/Users"),
            ("PUT", "/Users/ann"),
            ("PATCH", "/Users/bob"),
            ("POST", "/Groups"),
            ("PUT", "/Groups/group"),
            ("POST", "/Users/.search"),
            ("POST", "/.search"),
        ]
    ),
)
def test_no_raw_json_edge_case_gets_a_server_error_and_a_refusal_changes_nothing(
    scim, sessions, monkeypatch, world, body, request
) -> None:
    fuzz.hold_tasks(monkeypatch)
    method, template = request
    name = template.rsplit("/", 1)[-1]
    path = template.replace(name, world[name]) if name in world else template
    write_changes_nothing_when_refused(scim, sessions, method, path, body)


@fuzz.FUZZ
@given(
    sort_by=st.one_of(attribute, ANY_TEXT),
    order=st.sampled_from(["ascending", "descending", "DESCENDING", ""]),
    projection=st.lists(st.one_of(attribute, ANY_TEXT), max_size=3).map(",".join),
)
def test_no_sort_or_projection_gets_a_server_error(scim, world, sort_by, order, projection) -> None:
    for kind in ("Users", "Groups"):
        for parameter in ("attributes", "excludedAttributes"):
            search = {"sortBy": sort_by, "sortOrder": order, parameter: projection}
            assert_no_server_error(send(scim, "POST", f"/{kind}/.search", json.dumps(search)))
