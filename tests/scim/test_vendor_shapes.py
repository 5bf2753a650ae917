"""Single requests as the IdPs' own documents show them, each answered as the RFC and the
vendor say: the status, the `scimType` of a refusal (which changes nothing), and the user or
group read back afterwards. Where the reference server (scim2-server) takes a shape it gets
the same request on the same data, and the two must agree on the status and `scimType`
(docs/scim.md lists, with their RFC sections, the shapes where they differ on purpose).

Sources, cited by each shape:
- ENTRA_TUTORIAL: https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
  ("Request and response examples": create, query, update multi- and single-valued
  properties, disable, groups with `excludedAttributes=members`, members with `"$ref": null`)
- ENTRA_KNOWN_ISSUES: https://learn.microsoft.com/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
  (the same PATCH before and after `aadOptscim062020`: capitalised ops, "False" strings,
  `[{"value": …}]` single values, a value object without path, member removal); without
  the flag a single value also comes as `[{"$ref": null, "value": …}]`, as gateways built
  for Entra record it (github.com/jelhub/scimgateway: `"path":"displayName","value":
  [{"$ref":null,"value":"Peter Hansen"}]`, and so for a sub-attribute of a value path,
  `phoneNumbers[type eq "work"].value` or `addresses[type eq "work"].country`)
- ENTRA_APP_ROLES: https://learn.microsoft.com/entra/identity/app-provisioning/customize-application-attributes
  ("Provisioning a role to a SCIM app": roles with `"primary": "True"`, and
  SingleAppRoleAssignment's target `roles[primary eq "True"].value`; its example requests:
  SingleAppRoleAssignment's POST and its PATCH whose role value is a JSON text,
  AppRoleAssignmentsComplex's POST naming each role's `displayName`, and
  AssertiveAppRoleAssignmentsComplex's replace of every role)
- ENTRA_VALIDATOR: Microsoft's SCIM validator (https://scimvalidator.microsoft.com), its
  "Patch User - Add Attributes" request as captured by servers it was run against (e.g.
  github.com/sourcegraph/sourcegraph-public-snapshot pull 49119): a role's `display`,
  `value` and `type` by `roles[primary eq "True"]`, in that order, in one request
- OKTA: https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20 (lookups with
  startIndex=1&count=100, create with password and `groups: []`, PUT of the whole user,
  PATCH without path, Group Push by PATCH and by PUT, DELETE)
- ONELOGIN: the "SCIM Provisioner with SAML (SCIM v2 Enterprise)" JSON template, a parameter
  the user has no value for sent as "" (tests/scim/vendor_payloads.py cites it)
- JUMPCLOUD: members added and removed by a value list (tests/scim/vendor_payloads.py)
- RFC7644_3_10: attributes named under their own schema's URN (RFC 7644 section 3.10,
  "urn:ietf:params:scim:schemas:core:2.0:User:userName"), here as one object keyed by the
  core URN: a PATCH applies it, a POST or PUT body is refused, as scim2-server does both
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.scim.conftest import ScimClient
from tests.scim.payloads import ENTERPRISE, GROUP, MICROSOFT_GROUP, PATCH_OP, USER
from tests.scim.test_differential import Answer, Ours, Reference
from tests.scim.vendor_payloads import (
    ENTRA_VALIDATOR_CORE,
    entra_validator_patch,
    entra_validator_user,
    onelogin_enterprise_user,
)

ENTRA_TUTORIAL = "Entra ID tutorial"
ENTRA_KNOWN_ISSUES = "Entra ID known issues"
ENTRA_APP_ROLES = "Entra ID app roles"
ENTRA_VALIDATOR = "Entra ID SCIM validator"
OKTA = "Okta SCIM 2.0"
ONELOGIN = "OneLogin v2 Enterprise template"
JUMPCLOUD = "JumpCloud"
RFC7644_3_10 = "RFC 7644 section 3.10"
AZURE_ROLE = "WindowsAzureActiveDirectoryRole"
ROLE_AS_TEXT = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'

Check = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Shape:
    """One request of one vendor's, sent once the users ann and bob and the group Ops (ann
    in it) exist; `{ann}`, `{bob}` and `{ops}` in the path or body are their ids, `{made}`
    the id of what the last POST of `before` made."""

    source: str
    label: str
    method: str
    path: str
    body: Any = None
    status: int = 200
    # Read back afterwards (the target of the request): what must hold of it.
    check: Check | None = None
    # Whether scim2-server, given the same request, answers the same status and scimType.
    reference: bool = False
    scim_type: str | None = None
    # Sent first, each answered 2xx: the vendor's earlier request the shape follows.
    before: tuple[tuple[str, str, Any], ...] = ()


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def entra_user(local: str) -> dict[str, Any]:
    """ENTRA_TUTORIAL's "Create User" body (roles and addresses sent empty), with phones."""
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": local,
        "userName": f"{local}@contoso.example",
        "active": True,
        "addresses": [],
        "displayName": local.capitalize(),
        "emails": [{"primary": True, "type": "work", "value": f"{local}@contoso.example"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{local} Family", "familyName": "Family", "givenName": local},
        "phoneNumbers": [
            {"type": "work", "value": "+1 425 555 0100"},
            {"type": "mobile", "value": "+1 425 555 0101"},
        ],
        "roles": [],
    }


def phones(doc: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(p.get("type"), p.get("value")) for p in doc.get("phoneNumbers", [])]


def _work_phone_only(doc: dict[str, Any]) -> None:
    assert phones(doc) == [("work", "+1 425 555 0100")]


def _all(*checks: Check) -> Check:
    def check(doc: dict[str, Any]) -> None:
        for each in checks:
            each(doc)

    return check


def _equals(key: str, value: Any) -> Check:
    def check(doc: dict[str, Any]) -> None:
        assert doc.get(key) == value, (key, doc.get(key))

    return check


def _enterprise(key: str, value: Any) -> Check:
    def check(doc: dict[str, Any]) -> None:
        assert doc.get(ENTERPRISE, {}).get(key) == value, doc.get(ENTERPRISE)

    return check


def _manager(name: str) -> Check:
    def check(doc: dict[str, Any]) -> None:
        assert doc[ENTERPRISE]["manager"]["value"] == name

    return check


def _members(*names: str) -> Check:
    """The group's members, by the ids the placeholders stand for (filled in by `_run`)."""

    def check(doc: dict[str, Any]) -> None:
        assert sorted(m["value"] for m in doc.get("members", [])) == sorted(names)

    return check


def _found(total: int) -> Check:
    def check(doc: dict[str, Any]) -> None:
        assert doc["totalResults"] == total
        assert len(doc["Resources"]) == total

    return check


def _no_members_listed(doc: dict[str, Any]) -> None:
    resources = doc.get("Resources", [doc])
    assert resources and all("members" not in r for r in resources)


def _no_empty_elements(doc: dict[str, Any]) -> None:
    """OneLogin's template sent a phone, a photo and a role of empty strings: none kept."""
    assert "phoneNumbers" not in doc and "photos" not in doc and "roles" not in doc, doc


def _app_role(doc: dict[str, Any]) -> None:
    assert doc["roles"] == [
        {
            "value": "Admin",
            "display": "Admin",
            "type": "WindowsAzureActiveDirectoryRole",
            "primary": True,
        }
    ]


def _app_role_assignment(op: str, role: str) -> dict[str, Any]:
    """SingleAppRoleAssignment([appRoleAssignments]) mapped to its documented target."""
    return {"op": op, "path": 'roles[primary eq "True"].value', "value": role}


def _roles(*roles: dict[str, Any]) -> Check:
    return _equals("roles", list(roles))


def _core(**values: Any) -> dict[str, Any]:
    """The User's core attributes as one object under the core schema's URN."""
    return {USER: values}


def _revoked_titled(title: str) -> Check:
    return _all(_equals("active", False), _equals("title", title))


def _no_password(doc: dict[str, Any]) -> None:
    assert "password" not in doc
    assert doc["active"] is True


def _onelogin_user() -> dict[str, Any]:
    body = onelogin_enterprise_user("cara.lind@contoso.example")
    body["phoneNumbers"] = [{"value": "", "type": "work"}, {"value": "", "type": "mobile"}]
    body["photos"] = [{"value": "", "type": "photo"}]
    body["roles"] = [{"value": "", "primary": "False"}]
    return body


VALIDATOR_REPLACED = {
    key: value if isinstance(value, bool) or key == "timezone" else value[::-1]
    for key, value in ENTRA_VALIDATOR_CORE.items()
}


def _validator_patched(email: str, core: dict[str, Any]) -> Check:
    """The user after entra_validator_patch: every value path's value, and the core's."""

    def check(doc: dict[str, Any]) -> None:
        assert doc["emails"] == [{"value": email, "type": "work", "primary": True}]
        assert doc["phoneNumbers"] == [
            {"value": "33-749-9990", "type": "work", "primary": True},
            {"value": "33-749-9991", "type": "mobile"},
            {"value": "33-749-9992", "type": "fax"},
        ]
        (address,) = doc["addresses"]
        assert address["country"] == "Namibia" and address["postalCode"] == "wp2 3oc"
        assert doc["roles"] == [
            {"value": "JVQBTZOT", "display": "WMIIFOEB", "type": "BHOZLXUV", "primary": True}
        ]
        for path, value in core.items():
            urn, _, name = path.rpartition(":")
            container = doc[urn] if urn else doc
            for part in name.split("."):
                container = container[part]
            assert container == value, path

    return check


ANN = "/Users/{ann}"
OPS = "/Groups/{ops}"
SHAPES = [
    # Microsoft Entra ID
    Shape(
        ENTRA_TUTORIAL,
        "Get User by query",
        "GET",
        "/Users?filter=" + quote_plus('userName eq "ann@contoso.example"'),
        check=_found(1),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Get User by query - Zero results",
        "GET",
        "/Users?filter=" + quote('userName eq "non-existent user"'),
        check=_found(0),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Update User [Multi-valued properties]",
        "PATCH",
        ANN,
        _patch(
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "ann.new@contoso.example",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ),
        check=_all(
            _equals(
                "emails", [{"value": "ann.new@contoso.example", "type": "work", "primary": True}]
            ),
            _equals(
                "name",
                {"formatted": "ann Family", "familyName": "updatedFamilyName", "givenName": "ann"},
            ),
        ),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Update User [Single-valued properties]",
        "PATCH",
        ANN,
        _patch({"op": "Replace", "path": "userName", "value": "ann.renamed@contoso.example"}),
        check=_equals("userName", "ann.renamed@contoso.example"),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Disable User",
        "PATCH",
        ANN,
        _patch({"op": "Replace", "path": "active", "value": False}),
        check=_equals("active", False),
        reference=True,
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        'disable without the flag ("False")',
        "PATCH",
        ANN,
        _patch({"op": "Replace", "path": "active", "value": "False"}),
        check=_equals("active", False),
        reference=True,
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        'single value without the flag ([{"value": "Babs"}])',
        "PATCH",
        ANN,
        _patch({"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]}),
        check=_equals("nickName", "Babs"),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        'single values without the flag ([{"$ref": null, "value": x}])',
        "PATCH",
        ANN,
        _patch(
            {"op": "Replace", "path": "displayName", "value": [{"$ref": None, "value": "Peter"}]},
            {"op": "Replace", "path": "name.familyName", "value": [{"$ref": None, "value": "Han"}]},
            {
                "op": "Add",
                "path": f"{ENTERPRISE}:manager",
                "value": [{"$ref": None, "value": "{bob}"}],
            },
        ),
        check=_all(
            _equals("displayName", "Peter"),
            _equals("name", {"formatted": "ann Family", "familyName": "Han", "givenName": "ann"}),
            _manager("{bob}"),
        ),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "a value path's sub-attribute without the flag, wrapped",
        "PATCH",
        ANN,
        _patch(
            {
                "op": "Replace",
                "path": 'phoneNumbers[type eq "work"].value',
                "value": [{"$ref": None, "value": "+47 12345678"}],
            },
            {"op": "Add", "path": 'addresses[type eq "work"].country', "value": [{"value": "NO"}]},
            {
                "op": "Replace",
                "path": 'phoneNumbers[type eq "mobile"].value',
                "value": [{"value": ""}],
            },
        ),
        check=_all(
            _equals("phoneNumbers", [{"value": "+47 12345678", "type": "work"}]),
            _equals("addresses", [{"country": "NO", "type": "work"}]),
        ),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        'disable without the flag ([{"$ref": null, "value": "False"}])',
        "PATCH",
        ANN,
        _patch({"op": "Replace", "path": "active", "value": [{"$ref": None, "value": "False"}]}),
        check=_equals("active", False),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "several attributes in one value without path (the flag)",
        "PATCH",
        ANN,
        _patch(
            {
                "op": "replace",
                "value": {
                    "displayName": "Ann Flagged",
                    "name.givenName": "Annie",
                    'emails[type eq "work"].value': "ann.flag@contoso.example",
                    f"{ENTERPRISE}:employeeNumber": "E-7",
                },
            }
        ),
        check=_all(
            _equals("displayName", "Ann Flagged"),
            _equals(
                "emails", [{"value": "ann.flag@contoso.example", "type": "work", "primary": True}]
            ),
            _enterprise("employeeNumber", "E-7"),
        ),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "manager as a bare id",
        "PATCH",
        ANN,
        _patch({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "{bob}"}),
        check=_manager("{bob}"),
    ),
    Shape(
        ENTRA_TUTORIAL,
        'addresses[type eq "work"].formatted, no work address yet',
        "PATCH",
        ANN,
        _patch(
            {"op": "Add", "path": 'addresses[type eq "work"].formatted', "value": "1 Way\nRedmond"}
        ),
        check=_equals("addresses", [{"formatted": "1 Way\nRedmond", "type": "work"}]),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "the mobile number cleared by Remove of its value",
        "PATCH",
        ANN,
        _patch({"op": "Remove", "path": 'phoneNumbers[type eq "mobile"].value'}),
        check=_work_phone_only,
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "the mobile number cleared by an empty string",
        "PATCH",
        ANN,
        _patch({"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": ""}),
        check=_work_phone_only,
    ),
    Shape(
        ENTRA_APP_ROLES,
        'an app role with "primary": "True"',
        "PATCH",
        ANN,
        _patch(
            {
                "op": "Add",
                "path": "roles",
                "value": [
                    {
                        "primary": "True",
                        "type": "WindowsAzureActiveDirectoryRole",
                        "display": "Admin",
                        "value": "Admin",
                    }
                ],
            }
        ),
        check=_app_role,
    ),
    Shape(
        ENTRA_APP_ROLES,
        'SingleAppRoleAssignment: the first role, roles[primary eq "True"].value',
        "PATCH",
        ANN,
        _patch(_app_role_assignment("Add", "User")),
        check=_roles({"value": "User", "primary": True}),
    ),
    Shape(
        ENTRA_APP_ROLES,
        "SingleAppRoleAssignment: the role changed",
        "PATCH",
        ANN,
        _patch(_app_role_assignment("Replace", "Admin")),
        check=_roles({"value": "Admin", "primary": True}),
        before=(("PATCH", ANN, _patch(_app_role_assignment("Add", "User"))),),
    ),
    Shape(
        ENTRA_APP_ROLES,
        "SingleAppRoleAssignment: the example POST",
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "externalId": "alias",
            "userName": "alias@contoso.example",
            "active": True,
            "displayName": "First Name Last Name",
            "meta": {"resourceType": "User"},
            "roles": [{"primary": True, "type": AZURE_ROLE, "value": "Admin"}],
        },
        status=201,
        check=_roles({"value": "Admin", "type": AZURE_ROLE, "primary": True}),
    ),
    Shape(
        ENTRA_APP_ROLES,
        "SingleAppRoleAssignment: the example PATCH, the role as a JSON text",
        "PATCH",
        ANN,
        _patch({"op": "Add", "path": "roles", "value": [{"value": ROLE_AS_TEXT}]}),
        check=_roles({"value": ROLE_AS_TEXT}),
    ),
    Shape(
        ENTRA_APP_ROLES,
        "AppRoleAssignmentsComplex: the example POST (each role's displayName)",
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "externalId": "alias",
            "userName": "alias@contoso.example",
            "active": True,
            "roles": [
                {"primary": False, "type": AZURE_ROLE, "displayName": name, "value": name}
                for name in ("Admin", "User")
            ],
        },
        status=201,
        # displayName is no sub-attribute of roles (docs/scim.md): value and type are kept.
        check=_roles(
            *({"value": name, "type": AZURE_ROLE, "primary": False} for name in ("Admin", "User"))
        ),
    ),
    Shape(
        ENTRA_APP_ROLES,
        "AssertiveAppRoleAssignmentsComplex: every role replaced",
        "PATCH",
        ANN,
        _patch(
            {
                "op": "replace",
                "path": "roles",
                "value": [
                    {"primary": False, "type": AZURE_ROLE, "display": name, "value": name}
                    for name in ("User", "Test")
                ],
            }
        ),
        check=_roles(
            *(
                {"value": name, "display": name, "type": AZURE_ROLE, "primary": False}
                for name in ("User", "Test")
            )
        ),
        before=(("PATCH", ANN, _patch(_app_role_assignment("Add", "Admin"))),),
    ),
    Shape(
        ENTRA_VALIDATOR,
        "Patch User - Add Attributes: a role's display before its value",
        "PATCH",
        ANN,
        _patch(
            *(
                {"op": "add", "path": f'roles[primary eq "True"].{sub}', "value": value}
                for sub, value in (
                    ("display", "MSSEWRRJ"),
                    ("value", "CYDBGQII"),
                    ("type", "QRPQKXXK"),
                )
            )
        ),
        check=_roles(
            {"display": "MSSEWRRJ", "value": "CYDBGQII", "type": "QRPQKXXK", "primary": True}
        ),
    ),
    Shape(
        ENTRA_VALIDATOR,
        "Patch User - Replace Attributes: the primary role's display, value and type",
        "PATCH",
        ANN,
        _patch(
            *(
                {"op": "replace", "path": f'roles[primary eq "True"].{sub}', "value": value}
                for sub, value in (
                    ("display", "WMIIFOEB"),
                    ("value", "JVQBTZOT"),
                    ("type", "BHOZLXUV"),
                )
            )
        ),
        check=_roles(
            {"display": "WMIIFOEB", "value": "JVQBTZOT", "type": "BHOZLXUV", "primary": True}
        ),
        before=(("PATCH", ANN, _patch(_app_role_assignment("Add", "User"))),),
    ),
    Shape(
        ENTRA_VALIDATOR,
        "Create a new user (every attribute Entra maps)",
        "POST",
        "/Users",
        entra_validator_user("alfreda@contoso.example"),
        status=201,
        check=_all(
            _roles(
                {"value": "DVILABHT", "display": "LMYZCPJG", "type": "DNLVKNPA", "primary": True}
            ),
            _equals(
                "phoneNumbers",
                [
                    {"value": "18-569-6230", "type": "work", "primary": True},
                    {"value": "18-569-6230", "type": "mobile"},
                    {"value": "18-569-6230", "type": "fax"},
                ],
            ),
            _enterprise("department", "LGAWCIDHVMLI"),
        ),
    ),
    Shape(
        ENTRA_VALIDATOR,
        "Patch User - Add Attributes (to a user of a userName alone)",
        "PATCH",
        "/Users/{made}",
        entra_validator_patch("add", "roberta@contoso.example", ENTRA_VALIDATOR_CORE),
        check=_validator_patched("roberta@contoso.example", ENTRA_VALIDATOR_CORE),
        before=(("POST", "/Users", {"schemas": [USER], "userName": "rickey@contoso.example"}),),
    ),
    Shape(
        ENTRA_VALIDATOR,
        "Patch User - Replace Attributes",
        "PATCH",
        "/Users/{made}",
        entra_validator_patch("replace", "elbert@contoso.example", VALIDATOR_REPLACED),
        check=_validator_patched("elbert@contoso.example", VALIDATOR_REPLACED),
        before=(("POST", "/Users", entra_validator_user("alfreda@contoso.example")),),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Create Group with Microsoft's schema URN",
        "POST",
        "/Groups",
        {
            "schemas": [GROUP, MICROSOFT_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"},
        },
        status=201,
        check=_equals("displayName", "displayName"),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Get Group by displayName, excludedAttributes=members",
        "GET",
        "/Groups?excludedAttributes=members&filter=" + quote_plus('displayName eq "Ops"'),
        check=_no_members_listed,
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Get Group by displayName, the name created with a space after it",
        "GET",
        "/Groups?excludedAttributes=members&filter=" + quote_plus('displayName eq "Sales Team "'),
        check=_all(_found(1), _no_members_listed),
        before=(("POST", "/Groups", {"schemas": [GROUP], "displayName": "Sales Team "}),),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "querying users by manager",
        "GET",
        "/Users?filter=" + quote(f'{ENTERPRISE}:manager eq "{{bob}}"', safe="{}"),
        check=_found(1),
        before=(
            (
                "PATCH",
                ANN,
                _patch({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "{bob}"}),
            ),
        ),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "querying groups by id and by member",
        "GET",
        "/Groups?excludedAttributes=members&filter="
        + quote_plus('id eq "{ops}" and members eq "{ann}"', safe="{}"),
        check=_all(_found(1), _no_members_listed),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Get Group, excludedAttributes=members",
        "GET",
        OPS + "?excludedAttributes=members",
        check=_no_members_listed,
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        'Update Group [Add Members] ("$ref": null)',
        "PATCH",
        OPS,
        _patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": "{bob}"}]}),
        check=_members("{ann}", "{bob}"),
    ),
    Shape(
        ENTRA_TUTORIAL,
        'Update Group [Remove Members] ("$ref": null)',
        "PATCH",
        OPS,
        _patch({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "{ann}"}]}),
        check=_members(),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "a member removed by a value filter (the flag)",
        "PATCH",
        OPS,
        _patch({"op": "remove", "path": 'members[value eq "{ann}"]'}),
        check=_members(),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        "Update Group [Non-member attributes]",
        "PATCH",
        OPS,
        _patch({"op": "Replace", "path": "displayName", "value": "Ops renamed"}),
        check=_equals("displayName", "Ops renamed"),
        reference=True,
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "Requests to replace multiple attributes, with the flag (the page's own body)",
        "PATCH",
        ANN,
        _patch(
            {
                "op": "replace",
                "path": 'emails[type eq "work"].value',
                "value": "ann.mhvaes@contoso.example",
            },
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                },
            },
        ),
        check=_all(
            _equals("displayName", "Bjfe"),
            _equals(
                "emails", [{"value": "ann.mhvaes@contoso.example", "type": "work", "primary": True}]
            ),
            _equals("name", {"formatted": "ann Family", "familyName": "Unua", "givenName": "Kkom"}),
            _enterprise("employeeNumber", "Aklq"),
        ),
    ),
    Shape(
        ENTRA_KNOWN_ISSUES,
        "Requests to replace multiple attributes, without the flag (one Replace each)",
        "PATCH",
        ANN,
        _patch(
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
        ),
        check=_all(
            _equals("displayName", "Pvlo"),
            _equals("externalId", "Eqpj"),
            _enterprise("employeeNumber", "Eqpj"),
        ),
        reference=True,
    ),
    Shape(
        ENTRA_TUTORIAL,
        'proxyAddresses and the office as mapped: emails[type eq "other"].Value, '
        'addresses[type eq "other"].Formatted',
        "PATCH",
        ANN,
        _patch(
            {
                "op": "Add",
                "path": 'emails[type eq "other"].Value',
                "value": "smtp:ann@alias.example",
            },
            {"op": "Add", "path": 'addresses[type eq "other"].Formatted', "value": "Building 4"},
        ),
        check=_all(
            _equals(
                "emails",
                [
                    {"value": "ann@contoso.example", "type": "work", "primary": True},
                    {"value": "smtp:ann@alias.example", "type": "other"},
                ],
            ),
            _equals("addresses", [{"formatted": "Building 4", "type": "other"}]),
        ),
    ),
    Shape(
        ENTRA_TUTORIAL,
        "the example schema: the enterprise manager as a bare id",
        "POST",
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "userName": "bjensen@contoso.example",
            "externalId": "bjensen",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            ENTERPRISE: {"manager": "{bob}"},
        },
        status=201,
        check=_manager("{bob}"),
    ),
    # RFC 7644 section 3.10 (and scim2-server): the core attributes under the core URN
    Shape(
        RFC7644_3_10,
        "a deactivation without path, as an object under the core URN",
        "PATCH",
        ANN,
        _patch({"op": "replace", "value": _core(active=False, title="Leaver")}),
        check=_revoked_titled("Leaver"),
        reference=True,
    ),
    Shape(
        RFC7644_3_10,
        "a deactivation whose path is the core URN",
        "PATCH",
        ANN,
        _patch({"op": "replace", "path": USER, "value": {"active": False, "title": "Leaver"}}),
        check=_revoked_titled("Leaver"),
        reference=True,
    ),
    Shape(
        RFC7644_3_10,
        "the core URN removed whole",
        "PATCH",
        ANN,
        _patch({"op": "remove", "path": USER}),
        status=400,
        scim_type="mutability",
    ),
    Shape(
        RFC7644_3_10,
        "a PUT nesting its attributes under the core URN",
        "PUT",
        ANN,
        {"schemas": [USER], "userName": "ann@contoso.example", **_core(active=False)},
        status=400,
        scim_type="invalidSyntax",
        reference=True,
    ),
    Shape(
        RFC7644_3_10,
        "a POST nesting its attributes under the core URN",
        "POST",
        "/Users",
        {"schemas": [USER], "userName": "cory@contoso.example", **_core(title="Nested")},
        status=400,
        scim_type="invalidSyntax",
        reference=True,
    ),
    Shape(
        RFC7644_3_10,
        "a group renamed under the Group's URN",
        "PATCH",
        OPS,
        _patch({"op": "replace", "value": {GROUP: {"displayName": "Operations"}}}),
        check=_equals("displayName", "Operations"),
        reference=True,
    ),
    # Okta
    Shape(
        OKTA,
        "userName lookup with startIndex=1&count=100",
        "GET",
        "/Users?filter=" + quote('userName eq "bob@contoso.example"') + "&startIndex=1&count=100",
        check=_found(1),
        reference=True,
    ),
    Shape(
        OKTA,
        "create with password, locale and groups: []",
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "dana@contoso.example",
            "name": {"givenName": "Dana", "familyName": "Lee"},
            "emails": [{"primary": True, "value": "dana@contoso.example", "type": "work"}],
            "displayName": "Dana Lee",
            "locale": "en-US",
            "externalId": "00u1dana",
            "groups": [],
            "password": "1mp0ssible!",
            "active": True,
        },
        status=201,
        check=_no_password,
        reference=True,
    ),
    Shape(
        OKTA,
        "PUT of the whole user, password and read-only groups included",
        "PUT",
        ANN,
        {
            "schemas": [USER],
            "id": "{ann}",
            "userName": "ann@contoso.example",
            "name": {"givenName": "Ann", "familyName": "Put"},
            "emails": [{"primary": True, "value": "ann@contoso.example", "type": "work"}],
            "active": True,
            "groups": [{"value": "{ops}", "display": "Ops"}],
            "password": "n3w-Passw0rd",
            "meta": {"resourceType": "User"},
        },
        check=_all(
            _equals("name", {"givenName": "Ann", "familyName": "Put"}),
            _equals("phoneNumbers", None),
            _no_password,
        ),
    ),
    Shape(
        OKTA,
        "deactivate: replace without path",
        "PATCH",
        ANN,
        _patch({"op": "replace", "value": {"active": False}}),
        check=_equals("active", False),
        reference=True,
    ),
    Shape(
        OKTA,
        "password sync: replace without path",
        "PATCH",
        ANN,
        _patch({"op": "replace", "value": {"password": "s3cond-Passw0rd"}}),
        check=_no_password,
    ),
    Shape(
        OKTA,
        "Group Push: members added with display",
        "PATCH",
        OPS,
        _patch(
            {
                "op": "add",
                "path": "members",
                "value": [{"value": "{bob}", "display": "bob@contoso.example"}],
            }
        ),
        check=_members("{ann}", "{bob}"),
    ),
    Shape(
        OKTA,
        "Group Push: rename carrying the group's id",
        "PATCH",
        OPS,
        _patch({"op": "replace", "value": {"id": "{ops}", "displayName": "Operations"}}),
        check=_equals("displayName", "Operations"),
    ),
    Shape(
        OKTA,
        "Group Push without PATCH: PUT of the whole group",
        "PUT",
        OPS,
        {
            "schemas": [GROUP],
            "id": "{ops}",
            "displayName": "Ops",
            "members": [{"value": "{bob}", "display": "bob"}],
        },
        check=_members("{bob}"),
    ),
    Shape(OKTA, "Group Push: DELETE", "DELETE", OPS, status=204, reference=True),
    # OneLogin and JumpCloud
    Shape(
        ONELOGIN,
        "create from the template, phone, photo and role left empty",
        "POST",
        "/Users",
        _onelogin_user(),
        status=201,
        check=_no_empty_elements,
    ),
    Shape(
        JUMPCLOUD,
        "members added by a value list",
        "PATCH",
        OPS,
        _patch({"op": "add", "path": "members", "value": [{"value": "{bob}"}]}),
        check=_members("{ann}", "{bob}"),
        reference=True,
    ),
    Shape(
        JUMPCLOUD,
        "members removed by a value list",
        "PATCH",
        OPS,
        _patch({"op": "remove", "path": "members", "value": [{"value": "{ann}"}]}),
        check=_members(),
    ),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(value)
    for name, resource_id in ids.items():
        text = text.replace("{" + name + "}", resource_id)
    return json.loads(text)


def _load(server: Ours | Reference) -> dict[str, str]:
    """ann and bob as Entra ID creates them, and the group Ops with ann in it."""
    ids = {}
    for local in ("ann", "bob"):
        created = server.request("POST", "/Users", entra_user(local))
        assert created.status == 201, created.body
        ids[local] = created.body["id"]
    group = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": ids["ann"]}]}
    created = server.request("POST", "/Groups", group)
    assert created.status == 201, created.body
    ids["ops"] = created.body["id"]
    return ids


def _prepare(server: Ours | Reference, shape: Shape) -> dict[str, str]:
    """The users and group loaded, then the shape's earlier requests sent: their ids."""
    ids = _load(server)
    for method, path, body in shape.before:
        earlier = server.request(method, _fill(path, ids), _fill(body, ids))
        assert earlier.status in (200, 201, 204), earlier.body
        if method == "POST":
            ids["made"] = earlier.body["id"]
    return ids


def _send(server: Ours | Reference, shape: Shape, ids: dict[str, str]) -> Answer:
    return server.request(shape.method, _fill(shape.path, ids), _fill(shape.body, ids))


def _scim_type(answer: Answer) -> str | None:
    return answer.body.get("scimType") if isinstance(answer.body, dict) else None


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.source}: {s.label}")
def test_each_shape_is_answered_as_its_vendor_documents(
    shape: Shape, scim: ScimClient, unchanged: Callable[[], None]
) -> None:
    ours = Ours(scim)
    ids = _prepare(ours, shape)
    if shape.status >= 400:
        unchanged()
    answer = _send(ours, shape, ids)
    assert answer.status == shape.status, answer.body
    if shape.status >= 400:
        assert _scim_type(answer) == shape.scim_type
        unchanged()
        return
    if shape.check is None:
        return
    if shape.method == "GET":
        shape.check(answer.body)
        return
    target = answer.body["meta"]["location"] if shape.method == "POST" else _fill(shape.path, ids)
    read = ours.request("GET", target.split("/scim/v2", 1)[-1])
    assert read.status == 200, read.body
    _fill_check(shape.check, ids)(read.body)


def _fill_check(check: Check, ids: dict[str, str]) -> Check:
    """The check, reading the document with the ids put back as their placeholders."""
    names = {resource_id: "{" + name + "}" for name, resource_id in ids.items()}

    def filled(doc: dict[str, Any]) -> None:
        text = json.dumps(doc)
        for resource_id, placeholder in names.items():
            text = text.replace(resource_id, placeholder)
        check(json.loads(text))

    return filled


@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if s.reference], ids=lambda s: f"{s.source}: {s.label}"
)
def test_the_reference_server_answers_alike(shape: Shape, scim: ScimClient) -> None:
    ours, reference = Ours(scim), Reference()
    answers = [_send(server, shape, _prepare(server, shape)) for server in (ours, reference)]
    ours_answer, reference_answer = answers
    # RFC 7644 section 3.5.2: a PATCH answers 200 with the resource or 204 without it.
    assert _success_as_200(ours_answer) == _success_as_200(reference_answer), answers
    assert _scim_type(ours_answer) == _scim_type(reference_answer), answers


def _success_as_200(answer: Answer) -> int:
    return 200 if answer.status == 204 and answer.body is None else answer.status
