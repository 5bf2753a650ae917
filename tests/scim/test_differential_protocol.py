"""The protocol around the resources, odock-sync against the reference SCIM server
(scim2-server), as the other differentials do for filters and writes: the error answer to
each kind of bad write (its status, its scimType and the shape of the Error message),
readOnly attributes sent on POST, PUT and PATCH, values of the wrong JSON type (generated:
each attribute with each wrong shape, by each verb), required attributes left out, PATCH
paths that are malformed or match nothing, `returned` with `attributes` and
`excludedAttributes` on the answers of every verb, PUT replacing multi-valued attributes,
attribute names and URNs in any case, the `schemas` array, the discovery endpoints, the
searches, methods not allowed and paging edges. Every difference left is one docs/scim.md
lists with its RFC reason (KNOWN_DIFFERENCES), and each listed one must still show.

Reads come first, on the users and the group both servers were given; then each write goes
to user "a" (the RFC 7643 section 8.2 user), user "b" or group "g", fresh ones once a write
was taken by either server, so the two stay alike. A refusal of ours must leave the user
and the group as they were."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from scim2_server import service

from tests.scim.payloads import ENTERPRISE, GROUP, PATCH_OP, USER, rfc7643_8_2_full_user
from tests.scim.test_differential import Reference, normalised
from tests.scim.test_differential_groups import _substitute
from tests.support.scim_writes import Difference, Listed, Outcome, Write, assert_only_listed

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCIM = "application/scim+json"

# What a case compares besides the status and scimType: the answer's top-level names, the
# answer less ids and meta, a list's paging, user "a" or group "g" read back afterwards,
# or the user a POST created.
View = str
# A JSON body, or a function of user "a" as created that makes one. Placeholders in its
# strings: {a}, {b}, {g} each server's ids; {k} the names of a, b and g (u{k}@example.com,
# b{k}@x.org, G{k}); {n} the case's number, for the names of what it makes.
Body = Any


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str
    body: Body = None
    view: View = "status"


def patch(*operations: Any, schemas: Any = (PATCH_OP,)) -> dict[str, Any]:
    return {"schemas": list(schemas), "Operations": list(operations)}


def op(name: Any, path: Any = None, value: Any = None, **more: Any) -> dict[str, Any]:
    operation = {"op": name, **more}
    if path is not None:
        operation["path"] = path
    if value is not None:
        operation["value"] = value
    return operation


def new_user(**attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": "new{n}@example.com", "active": True} | attributes


def as_created(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """User "a" as it was created, with `changes` (None drops an attribute)."""

    def body(base: dict[str, Any]) -> dict[str, Any]:
        document = dict(base) | changes
        return {k: v for k, v in document.items() if v is not None}

    return body


A, G = "/Users/{a}", "/Groups/{g}"

# --- reads (first, on the loaded data) ---------------------------------------------------

DISCOVERY = [
    Case(f"GET {path}", "GET", path, view="keys")
    for path in (
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/ResourceTypes/Group",
        "/ResourceTypes/Unknown",
        "/ResourceTypes?count=1",
        "/ResourceTypes/User?attributes=name",
        "/Schemas?attributes=id",
        f"/Schemas/{USER}",
        f"/Schemas/{ENTERPRISE}",
        f"/Schemas/{GROUP}",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "/Schemas/urn:unknown",
        "/Schemas/User",
        "/ServiceProviderConfig/x",
        "/Unknown",
        "/Users/{a}/x",
    )
]
PAGING = [
    Case(f"GET {resources}?{query}", "GET", f"{resources}?sortBy={by}&{query}", view="page")
    for resources, by in (("/Users", "userName"), ("/Groups", "displayName"))
    for query in (
        "count=0",
        "count=-1",
        "startIndex=0",
        "startIndex=-5",
        "startIndex=3",
        "startIndex=100",
        "count=1&startIndex=2",
        "count=0&startIndex=100",
        "count=abc",
        "startIndex=1.5",
    )
]
SEARCHES = [
    Case("POST /Users/.search", "POST", "/Users/.search", {"filter": 'userName eq "b{k}@x.org"'}),
    Case("POST /.search", "POST", "/.search", {"filter": 'displayName eq "G{k}"'}),
    Case("POST /.search, nothing", "POST", "/.search", {}),
    Case("POST /.search count 0", "POST", "/.search", {"count": 0}),
    Case("search attributes list", "POST", "/Users/.search", {"attributes": ["userName"]}),
    Case("search attributes string", "POST", "/Users/.search", {"attributes": "userName"}),
    Case("search startIndex string", "POST", "/Users/.search", {"startIndex": "1"}),
    Case("search count -1", "POST", "/Users/.search", {"count": -1}),
    Case("search count 1.5", "POST", "/Users/.search", {"count": 1.5}),
    Case("search count true", "POST", "/Users/.search", {"count": True}),
    Case("search an unknown attribute", "POST", "/Users/.search", {"filtr": 'userName eq "x"'}),
    Case("search FILTER", "POST", "/Users/.search", {"FILTER": 'userName eq "b{k}@x.org"'}),
    Case(
        "search sortOrder up", "POST", "/Users/.search", {"sortBy": "userName", "sortOrder": "up"}
    ),
    Case("search bad filter", "POST", "/Users/.search", {"filter": "userName eq"}),
    Case("search filter 5", "POST", "/Users/.search", {"filter": 5}),
    Case(
        "search both projections",
        "POST",
        "/Users/.search",
        {"attributes": ["userName"], "excludedAttributes": ["emails"]},
    ),
]
SEARCHES = [
    Case(c.label, c.method, c.path, {"schemas": [SEARCH]} | c.body, "page") for c in SEARCHES
] + [
    Case(
        "search without schemas",
        "POST",
        "/Users/.search",
        {"count": 1, "sortBy": "userName"},
        "page",
    ),
    Case("search schemas User", "POST", "/Users/.search", {"schemas": [USER]}, "page"),
    Case("GET /.search", "GET", "/.search"),
    Case("GET /Users/.search", "GET", "/Users/.search"),
]
METHODS = [
    Case(f"{method} {path}", method, path, patch() if method in ("PUT", "PATCH", "POST") else None)
    for method, path in (
        ("PATCH", "/Users"),
        ("PUT", "/Users"),
        ("DELETE", "/Users"),
        ("POST", A),
        ("PATCH", "/Groups"),
        ("DELETE", "/Groups"),
        ("POST", G),
        ("POST", "/ServiceProviderConfig"),
        ("PUT", "/Schemas"),
        ("DELETE", "/ResourceTypes/User"),
        ("PATCH", "/ServiceProviderConfig"),
    )
]
NO_SUCH = "00000000-0000-0000-0000-000000000000"
UNKNOWN_IDS = [
    Case(f"{method} unknown {kind}", method, f"/{kind}s/{NO_SUCH}", body)
    for method in ("GET", "PUT", "PATCH", "DELETE")
    for kind, body in (
        ("User", {"GET": None, "PUT": new_user(), "PATCH": patch(op("remove", "title"))}),
        (
            "Group",
            {
                "GET": None,
                "PUT": {"displayName": "x"},
                "PATCH": patch(op("add", "externalId", "x")),
            },
        ),
    )
    for body in (body.get(method),)
]
RETURNED_QUERIES = (
    "attributes=password",
    "attributes=USERNAME,NAME.GIVENNAME,emails.value",
    "attributes=id",
    "attributes=groups",
    "attributes=meta",
    f"attributes={ENTERPRISE}:department",
    "excludedAttributes=id",
    "excludedAttributes=userName",
    "excludedAttributes=groups",
    "excludedAttributes=meta",
    "excludedAttributes=EMAILS,NAME",
    f"excludedAttributes={ENTERPRISE}",
)
RETURNED_READS = [
    Case(f"GET ?{query}", "GET", f"{A}?{query}", view="answer") for query in RETURNED_QUERIES
] + [
    Case(
        f"list ?{query}",
        "GET",
        f'/Users?{query}&filter=userName eq "u{{k}}@example.com"',
        None,
        "page",
    )
    for query in RETURNED_QUERIES
]
CASE_READS = [
    Case("filter USERNAME Eq", "GET", '/Users?filter=USERNAME Eq "U{k}@EXAMPLE.COM"', None, "page"),
    Case(
        "filter EMAILS[TYPE eq]",
        "GET",
        '/Users?filter=EMAILS[TYPE eq "work" and VALUE sw "u{k}@"]',
        None,
        "page",
    ),
    Case("sortBy USERNAME", "GET", "/Users?sortBy=USERNAME&sortOrder=descending", None, "page"),
]
READS = [*DISCOVERY, *PAGING, *SEARCHES, *METHODS, *UNKNOWN_IDS, *RETURNED_READS, *CASE_READS]

# --- writes -------------------------------------------------------------------------------

READ_ONLY = [
    Case("POST with id", "POST", "/Users", new_user(id="mine"), "created"),
    Case("POST with meta", "POST", "/Users", new_user(meta={"resourceType": "Group"}), "created"),
    Case("POST with groups", "POST", "/Users", new_user(groups=[{"value": "{g}"}]), "created"),
    Case("PUT with groups", "PUT", A, as_created(groups=[]), "user"),
    Case("PUT with another id", "PUT", A, as_created(id="other"), "user"),
    Case("PUT with b's id", "PUT", A, as_created(id="{b}"), "user"),
    Case("PUT with meta", "PUT", A, as_created(meta={"created": "2000-01-01T00:00:00Z"}), "user"),
    Case("PUT group with another id", "PUT", G, {"id": "x", "displayName": "G{k}"}, "group"),
    # readOnly and writeOnly values of any type: ignored (RFC 7644 section 3.5.1) here.
    Case("POST meta 1", "POST", "/Users", new_user(meta=1), "created"),
    Case("POST groups 2.5", "POST", "/Users", new_user(groups=2.5), "created"),
    Case("POST password {}", "POST", "/Users", new_user(password={}), "created"),
    Case("PUT id a list", "PUT", A, as_created(id=[{"value": 1}]), "user"),
    Case("PUT meta a list", "PUT", A, as_created(meta=[]), "user"),
    # One object for a multi-valued attribute: a list of one here (OneLogin's emails).
    Case("POST roles one object", "POST", "/Users", new_user(roles={"value": "r"}), "created"),
    Case(
        "PUT phoneNumbers one object",
        "PUT",
        A,
        as_created(phoneNumbers={"value": "+1 555 0199", "type": "work"}),
        "user",
    ),
    *(
        Case(f"PATCH {name} {path}", "PATCH", A, patch(op(name, path, value)), "user")
        for name, path, value in (
            ("replace", "id", "x"),
            ("remove", "id", None),
            ("add", "id", "x"),
            ("replace", "meta.created", "2000-01-01T00:00:00Z"),
            ("remove", "meta", None),
            ("replace", "meta", {"created": "2000-01-01T00:00:00Z"}),
            ("add", "groups", [{"value": "{g}"}]),
            ("replace", "groups", [{"value": "{g}"}]),
            ("remove", "groups", None),
        )
    ),
    Case("PATCH no path {id}", "PATCH", A, patch(op("replace", value={"id": "x", "title": "T"}))),
    Case(
        "PATCH no path {meta}",
        "PATCH",
        A,
        patch(op("replace", value={"meta": {"created": "2000-01-01T00:00:00Z"}, "title": "T"})),
    ),
    Case(
        "PATCH no path {groups}",
        "PATCH",
        A,
        patch(op("add", value={"groups": [{"value": "{g}"}], "title": "T"})),
    ),
    Case(
        "PATCH group members[…].value",
        "PATCH",
        G,
        patch(op("replace", 'members[value eq "{a}"].value', "{b}")),
    ),
    Case("PATCH group id", "PATCH", G, patch(op("replace", "id", "x"))),
]

# Each attribute with values of the wrong JSON type (and the booleans with strings and
# numbers), by POST, PUT, PATCH with a path and PATCH without one.
WRONG_TYPES: list[tuple[str, Any]] = [
    ("active", "true"),
    ("active", 1),
    ("active", "yes"),
    ("userName", {"x": 1}),
    ("userName", ["u@example.com"]),
    ("displayName", ["a"]),
    ("displayName", {"a": 1}),
    ("title", ["x"]),
    ("nickName", True),
    ("externalId", 5),
    ("name", "x"),
    ("name", ["x"]),
    ("name", {"givenName": 5}),
    ("name", {"givenName": ["x"]}),
    ("emails", [{"value": 5}]),
    ("emails", [{"value": "w{n}@x.org", "primary": "yes"}]),
    ("emails", [{"value": "w{n}@x.org", "type": 5}]),
    ("emails", [["w{n}@x.org"]]),
    ("emails", [5]),
    ("phoneNumbers", "555"),
    ("addresses", "x"),
    ("addresses", [{"locality": 5}]),
    ("x509Certificates", [{"value": 5}]),
    ("roles", [{"value": "r", "primary": 1}]),
    ("timezone", 5),
    ("locale", ["en"]),
    ("preferredLanguage", {"x": 1}),
]
ENTERPRISE_WRONG_TYPES: list[tuple[str, Any]] = [
    ("employeeNumber", 5),
    ("department", ["x"]),
    ("manager", "{b}"),
    ("manager", 5),
    ("manager", [{"value": "{b}"}]),
    ("costCenter", {"a": 1}),
]


def _shown(value: Any) -> str:
    return json.dumps(value)[:40]


TYPES = (
    [
        case
        for name, value in WRONG_TYPES
        for case in (
            Case(f"POST {name}={_shown(value)}", "POST", "/Users", new_user(**{name: value})),
            Case(f"PUT {name}={_shown(value)}", "PUT", A, as_created(**{name: value})),
            Case(f"PATCH {name}={_shown(value)}", "PATCH", A, patch(op("replace", name, value))),
            Case(
                f"PATCH no path {name}={_shown(value)}",
                "PATCH",
                A,
                patch(op("replace", value={name: value})),
            ),
        )
    ]
    + [
        case
        for name, value in ENTERPRISE_WRONG_TYPES
        for case in (
            Case(
                f"POST enterprise {name}={_shown(value)}",
                "POST",
                "/Users",
                new_user(schemas=[USER, ENTERPRISE], **{ENTERPRISE: {name: value}}),
            ),
            Case(
                f"PATCH enterprise {name}={_shown(value)}",
                "PATCH",
                A,
                patch(op("replace", f"{ENTERPRISE}:{name}", value)),
            ),
        )
    ]
    + [
        Case("POST enterprise a string", "POST", "/Users", new_user(**{ENTERPRISE: "x"})),
        Case("PATCH enterprise a string", "PATCH", A, patch(op("replace", ENTERPRISE, "x"))),
        Case("POST group displayName 5", "POST", "/Groups", {"displayName": 5}),
        Case("POST group displayName list", "POST", "/Groups", {"displayName": ["G"]}),
        Case(
            "POST group members string", "POST", "/Groups", {"displayName": "N{n}", "members": "x"}
        ),
        Case("POST group members [5]", "POST", "/Groups", {"displayName": "N{n}", "members": [5]}),
        Case(
            "POST group externalId 5", "POST", "/Groups", {"displayName": "N{n}", "externalId": 5}
        ),
    ]
)

REQUIRED = [
    Case("POST {}", "POST", "/Users", {}),
    Case("POST only schemas", "POST", "/Users", {"schemas": [USER]}),
    Case("POST userName null", "POST", "/Users", new_user(userName=None)),
    Case("PUT userName null", "PUT", A, lambda base: base | {"userName": None}),
    Case("POST without active", "POST", "/Users", {"userName": "new{n}@example.com"}, "created"),
    Case("POST no email", "POST", "/Users", {"userName": "new{n}", "active": True}, "created"),
    Case("PATCH remove emails", "PATCH", "/Users/{b}", patch(op("remove", "emails"))),
    Case("POST email without value", "POST", "/Users", new_user(emails=[{"type": "work"}])),
    Case("POST group without displayName", "POST", "/Groups", {"schemas": [GROUP]}),
    Case("POST group displayName null", "POST", "/Groups", {"displayName": None}),
    Case("PUT group without displayName", "PUT", G, {"schemas": [GROUP]}),
]

PATHS = [
    "emails[",
    "emails]",
    "name..givenName",
    "",
    " ",
    "123",
    "name.givenName.x",
    'emails[type eq "work"].value.x',
    "urn:bogus",
    f"{USER}:",
    ".title",
    "title.",
    "emails[]",
    'emails[type eq "work"]extra',
    "name[givenName]",
    "emails.value.value",
    'members[value eq "x"]',
]
BAD_PATHS = [
    Case(f"PATCH {name} path {path!r}", "PATCH", A, patch(op(name, path, value)))
    for path in PATHS
    for name, value in (("replace", "x"), ("remove", None))
] + [
    # A value filter comparing a sub-attribute with a value of another type: invalidFilter,
    # as in a query (a remove answered 200, a replace read the number as a value to make).
    *(
        Case(f"PATCH {name} {path}", "PATCH", A, patch(op(name, path, value)))
        for path in (
            "emails[type eq 5]",
            "emails[type eq true].value",
            'emails[primary eq "x"]',
            "emails[primary gt true]",
            'x509Certificates[value gt "x"]',
        )
        for name, value in (("remove", None), ("replace", {"value": "t{n}@x.org"}))
    ),
    Case("PATCH path 5", "PATCH", A, patch(op("replace", 5, "x"))),
    Case("PATCH op 5", "PATCH", A, patch(op(5, "title", "x"))),
    Case("PATCH an operation that is a string", "PATCH", A, patch("replace")),
]

NO_TARGET = [
    Case(f"PATCH {operation['op']} {operation['path']}", "PATCH", A, patch(operation), "user")
    for operation in (
        op("replace", 'emails[type eq "fax"]', {"value": "f{n}@x.org"}),
        op("add", 'emails[type eq "fax"]', {"value": "f{n}@x.org"}),
        op("replace", 'emails[type ne "work" and type ne "home"]', {"value": "f{n}@x.org"}),
        op("replace", 'emails[type ne "work" and type ne "home"].type', "x"),
        op("replace", 'emails[value co "zzz"]', {"value": "f{n}@x.org"}),
        op("replace", 'emails[value co "zzz"].type', "home"),
        op("remove", 'emails[value eq "nobody@x.org"]'),
        op("remove", 'emails[value eq "nobody@x.org"].type'),
        op("remove", 'phoneNumbers[type eq "fax"].value'),
        op("remove", 'ims[type eq "nothing"]'),
        op("remove", "entitlements"),
        op("replace", 'addresses[type eq "home"].locality', "X"),
        op("add", 'roles[value eq "r"].display', "X"),
    )
] + [
    Case(
        "PATCH group remove members[value eq unknown]",
        "PATCH",
        G,
        patch(op("remove", f'members[value eq "{NO_SUCH}"]')),
        "group",
    ),
    Case(
        "PATCH remove nickName twice",
        "PATCH",
        A,
        patch(op("remove", "nickName"), op("remove", "nickName")),
        "user",
    ),
]

NO_VALUE = [
    Case(label, "PATCH", path, patch(operation), "user" if path == A else "group")
    for label, path, operation in (
        ("remove without path", A, op("remove")),
        ("remove without path, with a value", A, op("remove", value={"title": "Tour Guide"})),
        ("group remove without path", G, op("remove")),
        ("add without value", A, op("add", "title")),
        ("add null", A, {"op": "add", "path": "title", "value": None}),
        ("add empty string", A, op("add", "title", "")),
        ("replace active null", A, {"op": "replace", "path": "active", "value": None}),
        ("add active null", A, {"op": "add", "path": "active", "value": None}),
        ("replace active empty string", A, op("replace", "active", "")),
        ("replace without path, active null", A, op("replace", value={"active": None})),
        ("add without path or value", A, op("add")),
        ("replace without path or value", A, op("replace")),
        ("add without path, a string", A, op("add", value="x")),
        ("add without path, a list", A, op("add", value=[{"title": "x"}])),
        ("add without path, {}", A, {"op": "add", "value": {}}),
        ("add without path, title null", A, op("add", value={"title": None})),
        ("group add members without value", G, op("add", "members")),
        ("group add without path or value", G, op("add")),
        ("add emails []", A, {"op": "add", "path": "emails", "value": []}),
        ("replace emails []", A, {"op": "replace", "path": "emails", "value": []}),
        ("replace emails null", A, {"op": "replace", "path": "emails", "value": None}),
        ("add name {}", A, {"op": "add", "path": "name", "value": {}}),
        ("replace name {}", A, {"op": "replace", "path": "name", "value": {}}),
        ("replace name {givenName}", A, op("replace", "name", {"givenName": "G"})),
        ("add name {givenName}", A, op("add", "name", {"givenName": "G"})),
    )
]

RETURNED_WRITES = [
    case
    for query in RETURNED_QUERIES
    for case in (
        Case(
            f"POST ?{query}",
            "POST",
            f"/Users?{query}",
            new_user(password="secret", emails=[{"value": "new{n}@example.com"}]),
            "answer",
        ),
        Case(f"PUT ?{query}", "PUT", f"{A}?{query}", as_created(password="secret"), "answer"),
        Case(
            f"PATCH ?{query}",
            "PATCH",
            f"{A}?{query}",
            patch(op("replace", "title", "Returned")),
            "answer",
        ),
    )
] + [
    Case(f"group {method} ?{query}", method, path, body, "answer")
    for query in ("attributes=displayName", "excludedAttributes=members", "attributes=members")
    for method, path, body in (
        ("PUT", f"{G}?{query}", {"displayName": "G{k}", "members": [{"value": "{a}"}]}),
        ("PATCH", f"{G}?{query}", patch(op("replace", "displayName", "G{k}"))),
    )
]

MULTI_VALUED = [
    Case("PUT one email", "PUT", A, as_created(emails=[{"value": "u{k}@example.com"}]), "user"),
    Case("PUT without phoneNumbers", "PUT", A, as_created(phoneNumbers=None), "user"),
    Case("PUT emails []", "PUT", A, as_created(emails=[]), "user"),
    Case("PUT emails null", "PUT", A, lambda base: base | {"emails": None}, "user"),
    Case("PUT phoneNumbers []", "PUT", A, as_created(phoneNumbers=[]), "user"),
    Case(
        "PUT other addresses",
        "PUT",
        A,
        as_created(addresses=[{"locality": "Lyon", "type": "home"}]),
        "user",
    ),
    Case("PUT without name", "PUT", A, as_created(name=None), "user"),
    Case(
        "PUT without the enterprise extension", "PUT", A, as_created(**{ENTERPRISE: None}), "user"
    ),
    Case("PUT group members []", "PUT", G, {"displayName": "G{k}", "members": []}, "group"),
    Case("PUT group without members", "PUT", G, {"displayName": "G{k}"}, "group"),
]

ANY_CASE = [
    Case(
        "POST USERNAME",
        "POST",
        "/Users",
        {"USERNAME": "new{n}@example.com", "active": True},
        "created",
    ),
    Case(
        "POST Name, GivenName, EMAILS",
        "POST",
        "/Users",
        new_user(
            Name={"GivenName": "X", "FAMILYNAME": "Y"},
            EMAILS=[{"VALUE": "new{n}@example.com", "Type": "work", "PRIMARY": True}],
        ),
        "created",
    ),
    Case(
        "POST the enterprise key in upper case",
        "POST",
        "/Users",
        new_user(schemas=[USER, ENTERPRISE], **{ENTERPRISE.upper(): {"Department": "X"}}),
        "created",
    ),
    Case(
        "PUT keys in upper case",
        "PUT",
        A,
        lambda base: {k.upper(): v for k, v in base.items()},
        "user",
    ),
    *(
        Case(f"PATCH {path}", "PATCH", A, patch(op("replace", path, value)), "user")
        for path, value in (
            ("USERNAME", "up{n}@example.com"),
            ('Emails[Type eq "work"].Value', "w{n}@example.com"),
            ('emails[TYPE EQ "WORK"].value', "w{n}@example.com"),
            ('EMAILS[type eq "work"].TYPE', "other"),
            ("NAME.FAMILYNAME", "Q"),
            (f"{ENTERPRISE.upper()}:Department", "Legal"),
            (f"{USER.upper()}:Title", "T"),
        )
    ),
    Case(
        "PATCH without path, NAME",
        "PATCH",
        A,
        patch(op("replace", value={"NAME": {"FAMILYNAME": "Q"}})),
        "user",
    ),
    Case(
        "POST the core URN in upper case",
        "POST",
        "/Users",
        new_user(schemas=[USER.upper()]),
        "created",
    ),
    Case(
        "PATCH the PatchOp URN in upper case",
        "PATCH",
        A,
        patch(op("replace", "title", "x"), schemas=[PATCH_OP.upper()]),
        "user",
    ),
]

SCHEMAS_VALUES: dict[str, Any] = {
    "[]": [],
    "[enterprise]": [ENTERPRISE],
    "[User, User]": [USER, USER],
    "[User, unknown]": [USER, "urn:unknown:schema"],
    "[User, enterprise, Group]": [USER, ENTERPRISE, GROUP],
    "[User, acme extension]": [USER, "urn:ietf:params:scim:schemas:extension:acme:2.0:User"],
    '"x"': "x",
    "[5]": [5],
    "null": None,
}
SCHEMAS = [
    case
    for label, schemas in SCHEMAS_VALUES.items()
    for case in (
        Case(
            f"POST schemas {label}",
            "POST",
            "/Users",
            new_user(schemas=schemas, **{ENTERPRISE: {"department": "X"}}),
            "created",
        ),
        Case(
            f"PUT schemas {label}",
            "PUT",
            A,
            lambda base, schemas=schemas: base | {"schemas": schemas},
            "user",
        ),
    )
] + [
    Case(
        "POST extension without its URN",
        "POST",
        "/Users",
        new_user(**{ENTERPRISE: {"department": "X"}}),
        "created",
    ),
    Case("POST group schemas []", "POST", "/Groups", {"schemas": [], "displayName": "N{n}"}),
    Case("POST group schemas User", "POST", "/Groups", {"schemas": [USER], "displayName": "N{n}"}),
    Case(
        "POST group an unknown URN",
        "POST",
        "/Groups",
        {"schemas": [GROUP, "urn:x:y"], "displayName": "N{n}"},
    ),
    Case("PATCH schemas []", "PATCH", A, patch(op("replace", "title", "x"), schemas=[]), "user"),
    Case(
        "PATCH schemas with another",
        "PATCH",
        A,
        patch(op("replace", "title", "x"), schemas=[PATCH_OP, "urn:x"]),
        "user",
    ),
    Case("POST no body", "POST", "/Users", None),
    Case("PATCH no body", "PATCH", A, None),
]

WRITES = [
    *READ_ONLY,
    *TYPES,
    *REQUIRED,
    *BAD_PATHS,
    *NO_TARGET,
    *NO_VALUE,
    *RETURNED_WRITES,
    *MULTI_VALUED,
    *ANY_CASE,
    *SCHEMAS,
]


# --- the two servers ----------------------------------------------------------------------

SIDES = ("ours", "theirs")


@dataclass
class Sent:
    status: int
    body: Any
    content_type: str


class Pair:
    """Both servers, each with user "a", user "b" (a member of no group) and group "g" (a
    its member), made alike."""

    def __init__(self, scim: Any) -> None:
        self.scim, self.reference = scim, Reference()
        self.ids: dict[str, dict[str, str]] = {side: {} for side in SIDES}
        self.k = 0
        self.base: dict[str, Any] = {}
        self.fill()

    def fill(self) -> None:
        self.k += 1
        k = self.k
        self.base = rfc7643_8_2_full_user(f"u{k}@example.com")
        for side in SIDES:
            ids = self.ids[side]
            ids["a"] = self.made(side, "/Users", self.base)
            user_b = {
                "userName": f"b{k}@x.org",
                "active": True,
                "emails": [{"value": f"b{k}@x.org"}],
            }
            ids["b"] = self.made(side, "/Users", user_b)
            group = {"displayName": f"G{k}", "members": [{"value": ids["a"]}]}
            ids["g"] = self.made(side, "/Groups", group)

    def made(self, side: str, path: str, body: dict[str, Any]) -> str:
        sent = self.send(side, "POST", path, body)
        assert sent.status == 201, (side, sent.body)
        return str(sent.body["id"])

    def text(self, side: str, text: str, n: int) -> str:
        for name, value in (*self.ids[side].items(), ("k", str(self.k)), ("n", str(n))):
            text = text.replace("{" + name + "}", value)
        return text

    def send(self, side: str, method: str, path: str, body: Any = None) -> Sent:
        if side == "ours":
            response = self.scim.request(method, path, body)
        else:
            headers = {"Accept": SCIM, "Content-Type": SCIM}
            response = self.reference.client.open(
                "/v2" + path, method=method, json=body, headers=headers
            )
        data = response.get_json(silent=True)
        status = response.status_code
        if method == "PATCH" and status == 204:
            status = 200  # RFC 7644 section 3.5.2: 200 with the resource or 204 without
        return Sent(status, data, response.mimetype)

    def case(self, side: str, case: Case, n: int) -> Sent:
        body = case.body(dict(self.base)) if callable(case.body) else case.body
        body = _substitute(body, lambda t: self.text(side, t, n))
        return self.send(side, case.method, self.text(side, case.path, n), body)

    def view(self, side: str, case: Case, sent: Sent) -> Any:
        """What `case.view` names of this answer. scim2-server does not derive a User's
        `groups` (docs/scim.md lists it), and each server makes its own ids: members are
        shown by slot ("a", "b")."""
        body = sent.body if isinstance(sent.body, dict) else {}
        if case.view == "keys":
            return sorted(body)
        if case.view == "answer":
            return self.resource(side, body)
        if case.view == "page":
            paging = [body.get(k) for k in ("schemas", "totalResults", "itemsPerPage")]
            found = [self.resource(side, r) for r in body.get("Resources", [])]
            sorted_by = "sortBy" in case.path or "sortBy" in (case.body or {})
            return paging, body.get("startIndex"), found if sorted_by else sorted(found)
        if case.view == "created" and sent.status == 201:
            return self.resource(side, self.send(side, "GET", f"/Users/{body['id']}").body)
        return None

    def resource(self, side: str, resource: dict[str, Any]) -> tuple[list[str], str]:
        """Its top-level names and its document less ids, meta and groups, as JSON text."""
        document = normalised(resource)
        if "members" in document:
            slots = {v: k for k, v in self.ids[side].items()}
            document["members"] = sorted(
                slots.get(m.get("value"), "?") for m in document["members"]
            )
        names = sorted(k for k in resource if k != "groups")
        return names, json.dumps(document, sort_keys=True)

    def read(self, side: str, what: str) -> tuple[list[str], str]:
        """User "a" or group "g" as it is now."""
        slot, path = ("a", "/Users/") if what == "user" else ("g", "/Groups/")
        return self.resource(side, self.send(side, "GET", path + self.ids[side][slot]).body)


def error_shape(sent: Sent) -> list[str]:
    """What an error answer lacks of RFC 7644 section 3.12's Error message."""
    if sent.status < 400:
        return []
    body = sent.body if isinstance(sent.body, dict) else {}
    wrong = []
    if body.get("schemas") != [ERROR]:
        wrong.append(f"schemas {body.get('schemas')!r}")
    if body.get("status") != str(sent.status):
        wrong.append(f"status {body.get('status')!r}")
    if not isinstance(body.get("detail"), str) or not body["detail"]:
        wrong.append("no detail")
    if sent.content_type != SCIM:
        wrong.append(f"content type {sent.content_type}")
    return wrong


def outcome(pair: Pair, side: str, case: Case, sent: Sent, now: Any) -> Outcome:
    """The answer, and the resource `case.view` names: `now`, its target read back."""
    failed = sent.status >= 400 and isinstance(sent.body, dict)
    scim_type = sent.body.get("scimType") if failed else None
    view = now if case.view in ("user", "group") else None
    if sent.status < 300 and view is None:
        view = pair.view(side, case, sent)
    return Outcome(sent.status, scim_type, {"view": view, "error": error_shape(sent)})


OK, CREATED = (200, None), (201, None)
INVALID_VALUE, INVALID_SYNTAX = (400, "invalidValue"), (400, "invalidSyntax")
INVALID_PATH = (400, "invalidPath")

AUTHENTICATION_SCHEMES = Listed("/ServiceProviderConfig authenticationSchemes", OK, OK)
EMPTY_EXTENSIONS = Listed("/ResourceTypes/Group schemaExtensions []", OK, OK)
COUNT_TRUE = Listed("a SearchRequest count of true", INVALID_VALUE, OK)
MESSAGE_TYPE = Listed(
    "schemas or a SearchRequest filter of another type", INVALID_SYNTAX, INVALID_VALUE
)
PATH_TYPE = Listed("a PATCH path that is no string", INVALID_PATH, INVALID_VALUE)
SEARCH_BY_GET = Listed("GET on a search endpoint", (405, None), (404, None))
READ_ONLY_IN_VALUE = Listed(
    "readOnly attributes in a PATCH value without path", OK, (400, "mutability")
)
NOT_A_BOOLEAN = Listed("a boolean written as another string or a number", INVALID_VALUE, OK)
NOT_A_BOOLEAN_POST = Listed(NOT_A_BOOLEAN.row, INVALID_VALUE, CREATED)
MANAGER_BARE_ID = Listed("the manager as a bare id (or wrapped)", OK, INVALID_VALUE)
MANAGER_BARE_ID_POST = Listed(MANAGER_BARE_ID.row, CREATED, INVALID_VALUE)
ACTIVE_BY_DEFAULT = Listed("POST without active", CREATED, CREATED)
EMAIL_REQUIRED = Listed("a user without an email", INVALID_VALUE, CREATED)
BLANK_PATH_REMOVE = Listed("an empty or blank PATCH path", (400, "noTarget"), INVALID_PATH)
BLANK_PATH_REPLACE = Listed(BLANK_PATH_REMOVE.row, INVALID_VALUE, INVALID_PATH)
UNKNOWN_URN_PATH = Listed("a PATCH path in a schema no schema names", OK, INVALID_PATH)
MALFORMED_VALUE_FILTER = Listed(
    "a malformed value filter in a PATCH path", (400, "invalidFilter"), INVALID_PATH
)
PATCH_OP_MALFORMED = Listed(
    "an operation that is no object, or op no string", INVALID_SYNTAX, INVALID_VALUE
)
PINNED_VALUE_MADE = Listed(
    "a value path that matches nothing, made of equalities", OK, (400, "noTarget")
)
NULL_ADDED = Listed("add or replace of null or an empty string", OK, INVALID_VALUE)
EMPTY_ADDED = Listed(NULL_ADDED.row, OK, OK)
POST_PROJECTED = Listed("attributes or excludedAttributes on POST", CREATED, CREATED)
URN_CASE = Listed("a URN in another case", CREATED, INVALID_SYNTAX)
URN_CASE_PATCH = Listed(URN_CASE.row, OK, INVALID_SYNTAX)
UNKNOWN_URN = Listed("schemas listing a URN that is not the resource's", CREATED, INVALID_SYNTAX)
UNKNOWN_URN_PUT = Listed(UNKNOWN_URN.row, OK, INVALID_SYNTAX)
NULL_SCHEMAS = Listed("schemas null", CREATED, INVALID_VALUE)
READ_ONLY_ANY_TYPE = Listed("readOnly or writeOnly values of any type", CREATED, INVALID_VALUE)
READ_ONLY_ANY_TYPE_PUT = Listed(READ_ONLY_ANY_TYPE.row, OK, INVALID_VALUE)
ONE_OBJECT = Listed("one object for a multi-valued attribute", CREATED, INVALID_VALUE)
ONE_OBJECT_PUT = Listed(ONE_OBJECT.row, OK, INVALID_VALUE)
ACTIVE_KEPT = Listed("active null or empty kept", OK, OK)
ACTIVE_KEPT_REFUSED = Listed(ACTIVE_KEPT.row, OK, INVALID_VALUE)
NULL_SCHEMAS_PUT = Listed(NULL_SCHEMAS.row, OK, INVALID_VALUE)

# Each request's label -> the difference docs/scim.md lists for it.
KNOWN_DIFFERENCES: dict[str, Listed] = {
    "GET /ServiceProviderConfig": AUTHENTICATION_SCHEMES,
    "GET /ResourceTypes/Group": EMPTY_EXTENSIONS,
    "search count true": COUNT_TRUE,
    "search filter 5": MESSAGE_TYPE,
    'POST schemas "x"': MESSAGE_TYPE,
    'PUT schemas "x"': MESSAGE_TYPE,
    "POST schemas [5]": MESSAGE_TYPE,
    "PUT schemas [5]": MESSAGE_TYPE,
    "PATCH path 5": PATH_TYPE,
    "GET /Users/.search": SEARCH_BY_GET,
    "PATCH no path {id}": READ_ONLY_IN_VALUE,
    "PATCH no path {meta}": READ_ONLY_IN_VALUE,
    "PATCH no path {groups}": READ_ONLY_IN_VALUE,
    **{
        f"{verb} {name}={_shown(value)}": NOT_A_BOOLEAN_POST if verb == "POST" else NOT_A_BOOLEAN
        for verb in ("POST", "PUT", "PATCH", "PATCH no path")
        for name, value in (
            ("active", 1),
            ("active", "yes"),
            ("emails", [{"value": "w{n}@x.org", "primary": "yes"}]),
            ("roles", [{"value": "r", "primary": 1}]),
        )
    },
    'POST enterprise manager="{b}"': MANAGER_BARE_ID_POST,
    'PATCH enterprise manager="{b}"': MANAGER_BARE_ID,
    'PATCH enterprise manager=[{"value": "{b}"}]': MANAGER_BARE_ID,
    "POST without active": ACTIVE_BY_DEFAULT,
    "POST no email": EMAIL_REQUIRED,
    "PATCH remove path ''": BLANK_PATH_REMOVE,
    "PATCH remove path ' '": BLANK_PATH_REMOVE,
    "PATCH replace path ' '": BLANK_PATH_REPLACE,
    "PATCH replace path 'urn:bogus'": UNKNOWN_URN_PATH,
    "PATCH remove path 'urn:bogus'": UNKNOWN_URN_PATH,
    "PATCH replace path 'emails[]'": MALFORMED_VALUE_FILTER,
    "PATCH remove path 'emails[]'": MALFORMED_VALUE_FILTER,
    "PATCH replace path 'name[givenName]'": MALFORMED_VALUE_FILTER,
    "PATCH remove path 'name[givenName]'": MALFORMED_VALUE_FILTER,
    "PATCH op 5": PATCH_OP_MALFORMED,
    "PATCH an operation that is a string": PATCH_OP_MALFORMED,
    'PATCH replace emails[type eq "fax"]': PINNED_VALUE_MADE,
    'PATCH add emails[type eq "fax"]': PINNED_VALUE_MADE,
    'PATCH replace addresses[type eq "home"].locality': PINNED_VALUE_MADE,
    'PATCH add roles[value eq "r"].display': PINNED_VALUE_MADE,
    "add null": NULL_ADDED,
    "add empty string": EMPTY_ADDED,
    **{f"POST ?{query}": POST_PROJECTED for query in RETURNED_QUERIES},
    "POST the core URN in upper case": URN_CASE,
    "PATCH the PatchOp URN in upper case": URN_CASE_PATCH,
    **{
        f"POST schemas {label}": UNKNOWN_URN
        for label in ("[User, unknown]", "[User, enterprise, Group]", "[User, acme extension]")
    },
    **{
        f"PUT schemas {label}": UNKNOWN_URN_PUT
        for label in ("[User, unknown]", "[User, enterprise, Group]", "[User, acme extension]")
    },
    "POST group an unknown URN": UNKNOWN_URN,
    "POST schemas null": NULL_SCHEMAS,
    "PUT schemas null": NULL_SCHEMAS_PUT,
    "POST meta 1": READ_ONLY_ANY_TYPE,
    "POST groups 2.5": READ_ONLY_ANY_TYPE,
    "POST password {}": READ_ONLY_ANY_TYPE,
    "PUT id a list": READ_ONLY_ANY_TYPE_PUT,
    "PUT meta a list": READ_ONLY_ANY_TYPE_PUT,
    "POST roles one object": ONE_OBJECT,
    "PUT phoneNumbers one object": ONE_OBJECT_PUT,
    "replace active null": ACTIVE_KEPT,
    "replace without path, active null": ACTIVE_KEPT,
    "add active null": ACTIVE_KEPT_REFUSED,
    "replace active empty string": ACTIVE_KEPT_REFUSED,
}


@pytest.fixture
def pair(scim: Any, monkeypatch: pytest.MonkeyPatch) -> Pair:
    # The reference builds a pydantic PatchOp model for every PATCH it reads; built once,
    # the same model answers alike (as in test_differential_user_writes.py).
    monkeypatch.setattr(service, "parametrize", functools.cache(service.parametrize))
    return Pair(scim)


def test_the_protocol_agrees_with_the_reference_server(pair):
    differences: list[Difference] = []
    before = {what: pair.read("ours", what) for what in ("user", "group")}
    for n, case in enumerate([*READS, *WRITES]):
        answers = {side: pair.case(side, case, n) for side in SIDES}
        target = "group" if case.path.startswith("/Groups") else "user"
        # A POST makes a resource of its own: user "a" and group "g" stay as they were.
        writes = n >= len(READS) and case.method != "POST"
        taken = writes and any(answer.status < 300 for answer in answers.values())
        now = {
            side: pair.read(side, target)
            for side in SIDES
            if writes and (side == "ours" or taken or case.view == target)
        }
        ours, theirs = (outcome(pair, side, case, answers[side], now.get(side)) for side in SIDES)
        assert ours.document["error"] == [], (case, answers["ours"].body)
        if ours != theirs:
            write = Write(case.label, case.method, case.path, case.body)
            differences.append(Difference(write, ours, theirs))
        if not writes:
            continue
        if ours.status >= 400:
            assert now["ours"] == before[target], case  # a refusal changes nothing
        if taken and (ours != theirs or now["ours"] != now["theirs"]):
            pair.fill()  # the two made alike again
            before = {what: pair.read("ours", what) for what in ("user", "group")}
        else:
            before[target] = now["ours"]
    assert len(READS) + len(WRITES) >= 400
    assert_only_listed(differences, KNOWN_DIFFERENCES)


# --- /Schemas, attribute by attribute -----------------------------------------------------

CHARACTERISTICS = (
    "type",
    "multiValued",
    "required",
    "mutability",
    "returned",
    "uniqueness",
    "caseExact",
    "canonicalValues",
    "referenceTypes",
)


def characteristics(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each attribute and sub-attribute of a schema (lower-case dotted name) -> what it
    publishes of RFC 7643 section 7's characteristics."""
    found: dict[str, dict[str, Any]] = {}

    def walk(attributes: list[dict[str, Any]], prefix: str) -> None:
        for attribute in attributes:
            name = prefix + attribute["name"]
            found[name.lower()] = {k: attribute.get(k) for k in CHARACTERISTICS}
            walk(attribute.get("subAttributes") or [], name + ".")

    walk(schema["attributes"], "")
    return found


# Each attribute whose characteristics differ -> the docs/scim.md row that says why.
SCHEMA_DIFFERENCES: dict[str, str] = {
    f"{USER} externalid": "externalId listed in the core schemas",
    f"{GROUP} externalid": "externalId listed in the core schemas",
    f"{USER} active": "active is required here (PATCH remove active)",
    f"{USER} emails": "emails required (a user without an email)",
    f"{USER} emails.value": "emails required (a user without an email)",
    f"{USER} emails.display": "/Schemas omits what is not kept",
    f"{USER} groups.type": "/Schemas omits what is not kept",
    f"{USER} groups.value": "references caseExact false",
    f"{USER} groups.$ref": "references caseExact false",
    f"{USER} profileurl": "URLs caseExact false",
    f"{USER} photos.value": "URLs caseExact false",
    f"{ENTERPRISE} manager.displayname": "/Schemas omits what is not kept",
    f"{ENTERPRISE} manager.value": "references caseExact false",
    f"{ENTERPRISE} manager.$ref": "references caseExact false",
    f"{GROUP} displayname": "group names unique",
    f"{GROUP} members.display": "members have no display",
    f"{GROUP} members.value": "references caseExact false",
    f"{GROUP} members.$ref": "references caseExact false; members are users (no nesting)",
    f"{GROUP} members.type": "members are users (no nesting)",
}


def test_each_schema_attribute_publishes_what_the_reference_server_does(scim):
    """`returned`, `mutability`, `required`… of every attribute /Schemas publishes, against
    scim2-server's (RFC 7643 sections 4 and 8.7.1): each difference is one docs/scim.md
    lists, and each listed one still shows."""
    reference = Reference()
    differing = set()
    for urn in (USER, ENTERPRISE, GROUP):
        ours = characteristics(scim.get(f"/Schemas/{urn}").json)
        theirs = characteristics(reference.request("GET", f"/Schemas/{urn}").body)
        for name in ours.keys() | theirs.keys():
            if ours.get(name) != theirs.get(name):
                differing.add(f"{urn} {name}")
    assert differing == set(SCHEMA_DIFFERENCES), differing ^ set(SCHEMA_DIFFERENCES)
