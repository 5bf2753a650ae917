"""Filters run in the database through the attribute map: every operator, logic, value paths."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy.dialects import postgresql

from connectors.scim import filters
from connectors.scim.errors import InvalidFilter
from models.queries.scim import USER_ATTRIBUTES
from tests.scim.payloads import ENTERPRISE

PEOPLE = [
    ("ann@example.com", "Ann", "work", "100", "ext-a"),
    ("bob@example.org", "Bob", "home", "250", "ext-b"),
    ("cid@example.com", "Cid", "work", "999", None),
    ("dee%_x@example.net", "Dee", "other", None, "ext-d"),
]


@pytest.fixture
def people(scim):
    ids = {}
    for email, given, kind, number, external in PEOPLE:
        body = {
            "userName": email,
            "name": {"givenName": given},
            "emails": [{"value": email, "type": kind, "primary": True}],
        }
        if external:
            body["externalId"] = external
        if number:
            body[ENTERPRISE] = {"employeeNumber": number, "department": "Ops"}
        response = scim.post("/Users", body)
        assert response.status_code == 201, response.json
        ids[given] = response.json["id"]
    bob = ids["Bob"]
    scim.patch(
        f"/Users/{bob}",
        {"Operations": [{"op": "replace", "path": "active", "value": False}]},
    )
    return ids


def names(scim, expression):
    response = scim.get("/Users?" + urlencode({"filter": expression, "sortBy": "userName"}))
    assert response.status_code == 200, response.json
    return [r["name"]["givenName"] for r in response.json["Resources"]]


CASES = [
    ('userName eq "ANN@example.com"', ["Ann"]),
    ('UserName Eq "ann@example.com"', ["Ann"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ann@example.com"', ["Ann"]),
    ('userName ne "ann@example.com"', ["Bob", "Cid", "Dee"]),
    ('userName co "example.c"', ["Ann", "Cid"]),
    ('userName sw "b"', ["Bob"]),
    ('userName ew ".org"', ["Bob"]),
    ('userName co "%_"', ["Dee"]),  # LIKE wildcards are escaped
    ('userName gt "bob@example.org"', ["Cid", "Dee"]),
    ('userName ge "bob@example.org"', ["Bob", "Cid", "Dee"]),
    ('userName lt "bob@example.org"', ["Ann"]),
    ('userName le "bob@example.org"', ["Ann", "Bob"]),
    ("externalId pr", ["Ann", "Bob", "Dee"]),
    ('externalId eq "EXT-A"', []),  # externalId is case-exact
    ('externalId eq "ext-a"', ["Ann"]),
    ("externalId eq null", ["Cid"]),
    ("not (externalId pr)", ["Cid"]),
    ("active eq false", ["Bob"]),
    ("active ne false", ["Ann", "Cid", "Dee"]),
    ('name.givenName eq "ann"', ["Ann"]),
    (f'{ENTERPRISE}:employeeNumber gt "2"', ["Bob", "Cid"]),
    ('employeeNumber eq "100"', ["Ann"]),
    ('emails co "example.net"', ["Dee"]),
    ('emails.type eq "work"', ["Ann", "Cid"]),
    ('emails[type eq "work" and value co "@example.com"]', ["Ann", "Cid"]),
    ('emails[type eq "work" and value co "@example.org"]', []),
    ('emails[type eq "work"].value eq "cid@example.com"', ["Cid"]),
    ('emails[not (type eq "work")]', ["Bob", "Dee"]),
    ("emails[primary eq true]", ["Ann", "Bob", "Cid", "Dee"]),
    ('userName sw "a" or userName sw "b" and active eq true', ["Ann"]),
    ('(userName sw "a" or userName sw "b") and active eq true', ["Ann"]),
    ('userName sw "a" and active eq true or userName sw "b"', ["Ann", "Bob"]),
    ('meta.created gt "2000-01-01T00:00:00Z"', ["Ann", "Bob", "Cid", "Dee"]),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', []),
]


def test_every_operator_logic_and_value_path_in_the_database(scim, people):
    # One data set for every case (a fresh database per case would dominate the run time).
    wrong = {
        expression: (found, expected)
        for expression, expected in CASES
        if (found := names(scim, expression)) != expected
    }
    assert wrong == {}


def test_id_filter(scim, people):
    assert names(scim, f'id eq "{people["Cid"]}"') == ["Cid"]
    assert names(scim, 'id eq "not-a-uuid"') == []


def test_filters_become_bound_sql_never_string_built():
    tree = filters.parse('userName eq "x\' OR 1=1 --" and emails[value co "%"]')
    sql = filters.to_sql(tree, USER_ATTRIBUTES).compile(dialect=postgresql.dialect())
    assert "1=1" not in str(sql)
    assert "x' or 1=1 --" in sql.params.values()  # userName compares lowercased
    assert "EXISTS" in str(sql)


def test_unknown_attribute_is_invalid_filter():
    with pytest.raises(InvalidFilter):
        filters.to_sql(filters.parse('nickname.value eq "x"'), USER_ATTRIBUTES)


def test_numbers_keep_all_their_digits():
    tree = filters.parse("x eq 12345")
    assert filters.comp_value(tree.expr.comp_value) == 12345


def test_filters_of_one_shape_share_one_translation_and_bind_their_own_strings(
    scim, people, monkeypatch
):
    """IdPs send a few filter shapes with ever new strings: a shape is parsed and translated
    once (connectors.scim.filters.ShapeCache), each filter binds its own strings."""
    parsed = []
    parse = filters._parse

    def counting(text, shape, strings):
        parsed.append(text)
        return parse(text, shape, strings)

    monkeypatch.setattr(filters, "_parse", counting)
    shape = 'name.givenName eq "0" and emails[type eq "1" and value eq "2"]'
    for given, kind, email in [
        ("ANN", "WORK", "ann@example.com"),
        ("Bob", "home", "BOB@example.org"),
        ("Cid", "home", "cid@example.com"),
    ]:
        expression = (
            f'name.givenName eq "{given}" and emails[type eq "{kind}" and value eq "{email}"]'
        )
        expected = [] if given == "Cid" else [given.title()]
        assert names(scim, expression) == expected
    assert parsed == [shape]  # translated once, from the shape, never from a filter's text
    # Shapes whose SQL depends on their strings are translated per filter, as before.
    assert names(scim, f'id eq "{people["Cid"]}"') == ["Cid"]
    assert names(scim, 'id eq "not-a-uuid"') == []
    assert names(scim, 'userName sw "b"') == ["Bob"]
    assert names(scim, 'userName sw "c"') == ["Cid"]


def test_a_shape_only_errors_with_its_strings_is_translated_per_filter():
    cache = filters.ShapeCache(USER_ATTRIBUTES)
    with pytest.raises(InvalidFilter, match="boolean"):
        cache.to_sql('active eq "yes"')
    with pytest.raises(InvalidFilter, match="dateTime"):
        cache.to_sql('meta.created gt "yesterday"')
    shared = cache.to_sql('userName eq "A" or externalId eq "B"')
    again = cache.to_sql('userName eq "C" or externalId eq "D"')
    assert shared.condition is again.condition
    assert shared.parameters == {"scim_filter_0": "a", "scim_filter_1": "B"}
    assert again.parameters == {"scim_filter_0": "c", "scim_filter_1": "D"}


def test_an_email_filter_compares_the_email_key(scim):
    """emails.value compares as the person is found by email (connectors.email_address): an
    A-label domain finds the U-label one, in any case. Before, the literal was only lowered."""
    body = {
        "userName": "eve@b\u00fccher.example",
        "name": {"givenName": "Eve"},
        "emails": [{"value": "eve@b\u00fccher.example", "type": "work", "primary": True}],
    }
    assert scim.post("/Users", body).status_code == 201
    for expression in (
        'emails.value eq "EVE@XN--BCHER-KVA.EXAMPLE"',
        'emails[value eq "eve@xn--bcher-kva.example"]',
        'emails[value eq "Eve@B\u00dcCHER.example"]',
    ):
        assert names(scim, expression) == ["Eve"], expression
