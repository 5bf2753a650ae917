"""Each hostile input of issue 14 against /scim/v2: SCIM error JSON with the RFC 7644
section 3.12 scimType, never a 500, and nothing stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.scim.conftest import SCIM, ScimClient, ops
from tests.scim.payloads import ENTERPRISE, okta_create_group, okta_create_user, okta_rename_group
from tests.scim.test_errors_and_isolation import assert_error
from tests.support.hostile import HOSTILE_VALUES, PLACEHOLDER, with_hostile


def send_raw(scim: ScimClient, method: str, path: str, body: str | bytes) -> Any:
    headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": SCIM}
    data = body.encode() if isinstance(body, str) else body
    return scim.client.open(f"/scim/v2{path}", method=method, data=data, headers=headers)


@pytest.fixture
def ann(scim: ScimClient) -> dict[str, Any]:
    return scim.post("/Users", okta_create_user("ann@example.com")).json


SCIM_TYPE = {"syntax": "invalidSyntax", "value": "invalidValue"}


@pytest.mark.parametrize("where", ["title", "userName"])
@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_hostile_bodies_are_refused_and_store_nothing(scim, unchanged, case, where):
    body = {**okta_create_user("eve@example.com"), where: PLACEHOLDER}
    unchanged()
    response = send_raw(scim, "POST", "/Users", with_hostile(body, case))
    assert_error(response, 400, SCIM_TYPE[HOSTILE_VALUES[case][1]])
    unchanged()


@pytest.mark.parametrize(
    "extra",
    [
        '"USERNAME": "other@example.com"',
        '"name": {"givenName": "Eve", "GIVENNAME": "Mallory"}',
    ],
)
def test_an_attribute_given_twice_in_two_cases_is_refused(scim, unchanged, extra):
    """RFC 7643 section 2.1: names are case-insensitive, so `userName` and `USERNAME` are
    one attribute given twice. The user was created as other@example.com, the second."""
    body = okta_create_user("eve@example.com")
    text = json.dumps({k: v for k, v in body.items() if not extra.startswith(f'"{k}"')})
    text = text[:-1] + ", " + extra + "}"
    unchanged()
    assert_error(send_raw(scim, "POST", "/Users", text), 400, "invalidSyntax")
    unchanged()


def test_patch_operations_given_twice_in_two_cases_are_refused(scim, ann, unchanged):
    body = (
        '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], '
        '"Operations": [{"op": "replace", "value": {"active": false}}], '
        '"operations": [{"op": "replace", "value": {"active": true}}]}'
    )
    unchanged()
    assert_error(send_raw(scim, "PATCH", f"/Users/{ann['id']}", body), 400, "invalidSyntax")
    unchanged()


def test_nul_in_an_unknown_attribute_name_is_refused(scim, unchanged):
    body = json.dumps({**okta_create_user("eve@example.com"), PLACEHOLDER: "x"})
    body = body.replace(f'"{PLACEHOLDER}"', '"ni\\u0000ck"')
    unchanged()
    assert_error(send_raw(scim, "POST", "/Users", body.encode()), 400, "invalidValue")
    unchanged()


@pytest.mark.parametrize("where", ["userName", "emails"])
def test_an_address_a_header_reads_as_two_mailboxes_is_invalid_value(scim, unchanged, where):
    """ "admin@corp.example,all-staff" has one @; as a To header it is two addresses, and the
    alerts meant for that person would reach the second as well."""
    address = "admin@corp.example,all-staff"
    body = okta_create_user("admin@corp.example")
    if where == "userName":
        body = {**body, "userName": address, "emails": []}
    else:
        body = {**body, "emails": [{"value": address, "type": "work", "primary": True}]}
    unchanged()
    assert_error(scim.post("/Users", body), 400, "invalidValue")
    unchanged()


def test_a_user_name_longer_than_its_column_in_lower_case_is_invalid_value(scim, unchanged):
    unchanged()
    response = scim.post("/Users", okta_create_user("İ" + "x" * 254))
    assert_error(response, 400, "invalidValue")
    assert "lower case" in response.json["detail"]
    unchanged()


def test_a_group_name_longer_than_its_column_in_lower_case_is_invalid_value(scim, unchanged):
    unchanged()
    assert_error(scim.post("/Groups", okta_create_group("İ" + "x" * 199)), 400, "invalidValue")
    unchanged()


def test_an_attribute_nested_900_deep_cannot_be_stored_so_later_patches_work(scim, ann):
    deep = {"op": "add", "path": "title", "value": "x"}
    raw = json.dumps(ops(deep)).replace('"x"', "[" * 900 + "]" * 900)
    assert_error(send_raw(scim, "PATCH", f"/Users/{ann['id']}", raw), 400, "invalidSyntax")
    later = scim.patch(f"/Users/{ann['id']}", ops({"op": "replace", "path": "title", "value": "t"}))
    assert later.status_code == 200 and later.json["title"] == "t"


@pytest.mark.parametrize("path", ["title", "displayName", "name.givenName"])
@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_hostile_patches_change_nothing(scim, ann, unchanged, case, path):
    body = ops({"op": "replace", "path": path, "value": PLACEHOLDER})
    unchanged()
    response = send_raw(scim, "PATCH", f"/Users/{ann['id']}", with_hostile(body, case))
    assert_error(response, 400, SCIM_TYPE[HOSTILE_VALUES[case][1]])
    unchanged()


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_hostile_group_bodies_change_nothing(scim, unchanged, case):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    body = ops({"op": "replace", "path": "displayName", "value": PLACEHOLDER})
    unchanged()
    response = send_raw(scim, "PATCH", f"/Groups/{group['id']}", with_hostile(body, case))
    assert_error(response, 400, SCIM_TYPE[HOSTILE_VALUES[case][1]])
    put = {**okta_create_group("Eng"), "displayName": PLACEHOLDER}
    response = send_raw(scim, "PUT", f"/Groups/{group['id']}", with_hostile(put, case))
    assert_error(response, 400, SCIM_TYPE[HOSTILE_VALUES[case][1]])
    unchanged()


@pytest.mark.parametrize(
    "filter_text",
    [
        'emails[type eq "work"] eq "x"',
        "(" * 990 + 'userName eq "a"' + ")" * 990,
        "not (" * 300 + 'userName eq "a"' + ")" * 300,
        'emails[type eq "work" and ' + "(" * 40 + 'value eq "a"' + ")" * 40 + "]",
    ],
)
@pytest.mark.parametrize("endpoint", ["/Users/.search", "/.search", "/Groups/.search"])
def test_filters_that_would_exhaust_the_parser_are_invalid_filter(scim, ann, endpoint, filter_text):
    response = scim.post(endpoint, {"filter": filter_text})
    assert_error(response, 400, "invalidFilter")


def test_a_value_path_compared_as_a_whole_is_invalid_filter_in_the_query(scim, ann):
    response = scim.get("/Users?filter=" + quote('emails[type eq "work"] eq "x"'))
    assert_error(response, 400, "invalidFilter")


@pytest.mark.parametrize(
    "query",
    [
        "filter=" + quote('userName eq "a\x00b"'),
        "filter=userName%20pr&attributes=user%00Name",
        "q%00=1",
    ],
)
def test_nul_in_a_query_parameter_is_invalid_value(scim, ann, query):
    assert_error(scim.get(f"/Users?{query}"), 400, "invalidValue")


@pytest.mark.parametrize(
    "query",
    [
        "startIndex=99999999999999999999999",
        "count=" + "9" * 5000,
        "count=%D9%A1%D9%A2",  # "١٢": Arabic-Indic digits
        "startIndex=%C2%B2",  # "²"
        "count=1_0",
    ],
)
def test_paging_numbers_outside_ascii_or_twenty_digits_are_invalid_value(scim, ann, query):
    assert_error(scim.get(f"/Users?{query}"), 400, "invalidValue")


def test_a_start_index_past_every_page_answers_an_empty_page(scim, ann):
    response = scim.get("/Users?startIndex=99999999999999999999&count=99999999999999999999")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["Resources"] == [] and response.json["totalResults"] == 1


@pytest.mark.parametrize(
    "body",
    ['{"count": 1e400}', '{"startIndex": 1' + "0" * 30 + "}", '{"count": Infinity}'],
)
def test_hostile_numbers_in_a_search_request_are_refused(scim, ann, body):
    response = send_raw(scim, "POST", "/Users/.search", body)
    assert_error(response, 400, "invalidSyntax" if "Infinity" in body else "invalidValue")


@pytest.mark.parametrize("text", ["\uff15", "\u0663", " 5", "5 ", "1_0", "1e1", "+"])
def test_a_search_request_number_in_text_must_be_ascii_digits(scim, ann, text):
    """As in a query string: int() would read a fullwidth 5, an Arabic-Indic 3 or "1_0"."""
    response = send_raw(scim, "POST", "/Users/.search", json.dumps({"count": text}))
    assert_error(response, 400, "invalidValue")


def test_a_search_request_number_in_ascii_text_is_read(scim, ann):
    response = send_raw(scim, "POST", "/Users/.search", json.dumps({"count": "0"}))
    assert response.status_code == 200 and response.json["Resources"] == []


@pytest.mark.parametrize("value", ["x", 1, True, [], [{"employeeNumber": "7"}]])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_enterprise_extension_that_is_not_an_object_is_invalid_value(
    scim, ann, unchanged, method, value
):
    path = "/Users" if method == "POST" else f"/Users/{ann['id']}"
    body = {**okta_create_user("eve@example.com" if method == "POST" else "ann@example.com")}
    body[ENTERPRISE] = value
    unchanged()
    assert_error(send_raw(scim, method, path, json.dumps(body)), 400, "invalidValue")
    unchanged()


@pytest.mark.parametrize(
    "body", [{"sortBy": 1}, {"sortBy": ["userName"]}, {"sortOrder": 1}, {"sortOrder": True}]
)
@pytest.mark.parametrize("endpoint", ["/Users/.search", "/Groups/.search", "/.search"])
def test_a_search_request_sorting_by_a_non_string_is_invalid_value(scim, ann, endpoint, body):
    assert_error(send_raw(scim, "POST", endpoint, json.dumps(body)), 400, "invalidValue")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_a_time_utc_cannot_hold_in_a_filter_is_invalid_filter(scim, ann, endpoint, moment):
    query = quote(f'meta.lastModified gt "{moment}"')
    assert_error(scim.get(f"{endpoint}?filter={query}"), 400, "invalidFilter")


# RFC 7643 section 2.3.1: a string attribute is a JSON string. A number, a boolean or an
# array in its place is 400 invalidValue and nothing is stored; it is not converted (the
# reference scim2-models refuses `"userName": 123` alike).
NOT_STRINGS = [123, 1.5, True, ["x"], {"x": "y"}]
USER_STRING_PLACES: list[tuple[str, Any]] = [
    ("userName", lambda body, v: body.update(userName=v)),
    ("displayName", lambda body, v: body.update(displayName=v)),
    ("externalId", lambda body, v: body.update(externalId=v)),
    ("name.givenName", lambda body, v: body["name"].update(givenName=v)),
    ("emails.value", lambda body, v: body["emails"][0].update(value=v)),
    ("title", lambda body, v: body.update(title=v)),
    ("employeeNumber", lambda body, v: body.update({ENTERPRISE: {"employeeNumber": v}})),
]


@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
@pytest.mark.parametrize("place", USER_STRING_PLACES, ids=lambda p: p[0])
def test_a_non_string_for_a_string_attribute_of_a_new_user_is_invalid_value(
    scim, unchanged, place, value
):
    name, put_value = place
    body = okta_create_user("eve@example.com")
    put_value(body, value)
    unchanged()
    response = scim.post("/Users", body)
    assert_error(response, 400, "invalidValue")
    assert "must be a string" in response.json["detail"]
    assert name.split(".")[-1] in response.json["detail"]
    unchanged()


@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
@pytest.mark.parametrize("path", ["userName", "displayName", "externalId", "name.givenName"])
def test_a_non_string_in_a_patch_or_put_changes_nothing(scim, ann, unchanged, path, value):
    unchanged()
    with_path = ops({"op": "replace", "path": path, "value": value})
    assert_error(scim.patch(f"/Users/{ann['id']}", with_path), 400, "invalidValue")
    no_path = ops({"op": "replace", "value": {path: value}})
    assert_error(scim.patch(f"/Users/{ann['id']}", no_path), 400, "invalidValue")
    if path == "userName":
        put = {**okta_create_user("ann@example.com"), "userName": value}
        assert_error(scim.put(f"/Users/{ann['id']}", put), 400, "invalidValue")
    unchanged()
    assert scim.get(f"/Users/{ann['id']}").json["userName"] == "ann@example.com"


@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
def test_a_non_string_group_name_or_member_value_is_invalid_value(scim, ann, unchanged, value):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    unchanged()
    assert_error(
        scim.post("/Groups", {**okta_create_group("x"), "displayName": value}), 400, "invalidValue"
    )
    members = {**okta_create_group("Ops"), "members": [{"value": value}]}
    assert_error(scim.post("/Groups", members), 400, "invalidValue")
    rename = ops({"op": "replace", "path": "displayName", "value": value})
    assert_error(scim.patch(f"/Groups/{group['id']}", rename), 400, "invalidValue")
    add = ops({"op": "add", "path": "members", "value": [{"value": value}]})
    assert_error(scim.patch(f"/Groups/{group['id']}", add), 400, "invalidValue")
    unchanged()
    assert scim.get(f"/Groups/{group['id']}").json["displayName"] == "Eng"


@pytest.mark.parametrize(
    "body", [{"count": 1.5}, {"startIndex": 2.5}, {"count": "x"}, {"count": False}]
)
@pytest.mark.parametrize("endpoint", ["/Users/.search", "/Groups/.search", "/.search"])
def test_a_search_request_paging_by_a_non_integer_is_invalid_value(scim, ann, endpoint, body):
    """RFC 7644 section 3.4.2.4: startIndex and count are integers; 1.5 was read as 1."""
    assert_error(send_raw(scim, "POST", endpoint, json.dumps(body)), 400, "invalidValue")


def test_a_search_request_paging_by_a_whole_number_written_with_a_point_is_read(scim, ann):
    response = send_raw(scim, "POST", "/Users/.search", json.dumps({"count": 1.0}))
    assert response.status_code == 200 and response.json["itemsPerPage"] == 1


INVISIBLE = ["\u200b", "\u202e", "\u2066", "\u200d", "\ufeff", "\u2028"]


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("where", ["userName", "emails", "secondary email"])
def test_an_identifier_with_an_invisible_character_is_invalid_value(
    scim, ann, unchanged, char, where
):
    """ "ann@example.com" with a zero-width or bidi character would be a second person who
    looks like ann everywhere: refused, on create and on replace, and nothing stored."""
    spoof = f"ann{char}@example.com"
    body = okta_create_user("eve@example.com")
    if where == "userName":
        body["userName"] = spoof
    elif where == "emails":
        body["emails"] = [{"primary": True, "value": spoof, "type": "work"}]
    else:
        body["emails"].append({"value": spoof, "type": "home"})
    unchanged()
    response = scim.post("/Users", body)
    assert_error(response, 400, "invalidValue")
    assert "invisible" in response.json["detail"]
    assert_error(scim.put(f"/Users/{ann['id']}", body), 400, "invalidValue")
    unchanged()


def test_names_with_invisible_or_bidi_characters_are_kept_as_sent(scim):
    """Display names may hold them (a joiner inside an emoji or an Indic word): they are
    shown with markers, not refused."""
    body = okta_create_user("dev@example.com")
    body["displayName"] = "Dev \U0001f469\u200d\U0001f4bb"
    body["name"] = {"givenName": "\u202eecila", "familyName": "\u0915\u094d\u200d\u0937"}
    created = scim.post("/Users", body)
    assert created.status_code == 201, created.json
    assert created.json["displayName"] == "Dev \U0001f469\u200d\U0001f4bb"
    assert created.json["name"]["givenName"] == "\u202eecila"


# Inside the name: at its end, U+2028 is whitespace and strip() takes it away.
HIDDEN_IN_GROUP_NAMES = [*INVISIBLE, "\u3164", "\u2061"]


@pytest.mark.parametrize("char", HIDDEN_IN_GROUP_NAMES)
def test_a_group_name_with_an_invisible_character_is_invalid_value(scim, unchanged, char):
    """A group's displayName is its team's key, and what a role mapping names: "Admins" with a
    zero-width or bidi character would be a second group that looks like Admins everywhere,
    mapped to another role or none. Refused on create, on replace and on a rename PATCH, as
    userName is (models.text.check_key_name); nothing stored."""
    admins = scim.post("/Groups", okta_create_group("Admins")).json
    spoof = f"Ad{char}mins"
    unchanged()
    created = scim.post("/Groups", okta_create_group(spoof))
    assert_error(created, 400, "invalidValue")
    assert "invisible" in created.json["detail"]
    replaced = scim.put(f"/Groups/{admins['id']}", okta_create_group(spoof))
    assert_error(replaced, 400, "invalidValue")
    renamed = scim.patch(f"/Groups/{admins['id']}", okta_rename_group(admins["id"], spoof))
    assert_error(renamed, 400, "invalidValue")
    unchanged()


@pytest.mark.parametrize(
    "name",
    ["Dev \U0001f469\u200d\U0001f4bb", "\u0915\u094d\u200d\u0937 team", "\u2764\ufe0f Ops"],
)
def test_a_group_name_with_a_joiner_inside_an_emoji_or_a_word_is_kept(scim, name):
    """What visible() keeps in a name (a joiner inside an emoji or an Indic word, an emoji's
    variation selector) a group's name keeps too."""
    created = scim.post("/Groups", okta_create_group(name))
    assert created.status_code == 201, created.json
    assert created.json["displayName"] == name


@pytest.mark.parametrize("where", ["userName", "emails"])
def test_an_identifier_in_fullwidth_letters_is_invalid_value(scim, unchanged, where):
    """ "ann" in fullwidth letters reads as "ann", and the email key takes it for ann's: not
    a second person (models.text.check_identifier)."""
    spoof = "\uff41\uff4e\uff4e@example.com"
    body = okta_create_user("eve@example.com")
    if where == "userName":
        body["userName"] = spoof
    else:
        body["emails"] = [{"primary": True, "value": spoof, "type": "work"}]
    unchanged()
    response = scim.post("/Users", body)
    assert_error(response, 400, "invalidValue")
    assert "fullwidth" in response.json["detail"]
    unchanged()
