"""What the other IdPs send, request by request, each shape beside the document it comes from.

tests/scim/payloads.py holds the RFC examples and the first Okta and Entra ID shapes; this
module holds the recorded sequences of Okta's own conformance test, Entra ID with and without
its `aadOptscim062020` flag, OneLogin, JumpCloud, PingFederate/PingOne and Rippling.
"""

from __future__ import annotations

from typing import Any

from tests.scim.payloads import (
    ENTERPRISE,
    GROUP,
    MICROSOFT_GROUP,
    PATCH_OP,
    USER,
    rfc7644_3_5_2_patch,
)

# Okta's conformance test.
# https://developer.okta.com/standards/SCIM/SCIMFiles/Okta-SCIM-20-SPEC-Test.json (the OIN
# "SPEC test": the first user of count=1 and the same by id, each with id, name.givenName,
# name.familyName, userName, active and emails[0].value; a random userName found by nobody;
# an unknown id 404 with a detail and the Error schema; a realistic create; a duplicate
# create 409; an upper-cased userName lookup answered 200; GET /Groups)
# https://github.com/oktadev/okta-scim-beta/blob/master/SCIM_tests_for_Runscope.json (its
# earlier "SCIM 2.0 Tests": count=2, Groups with count=100, the unassign PATCH).
OKTA_SPEC_HEADERS = {
    "Accept-Charset": "utf-8",
    "Content-Type": "application/scim+json; charset=utf-8",
    "User-Agent": "OKTA SCIM Integration",
}
# The groups step sends this Content-Type, trailing space included, on a GET.
OKTA_SPEC_GROUPS_CONTENT_TYPE = "application/scim+json; charset=utf-8 "


def okta_spec_create_user(user_name: str, email: str) -> dict[str, Any]:
    """The "Create Okta user with realistic values" step (its raw_body, with our names)."""
    return {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Tina", "familyName": "Erickson"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": "Tina Erickson",
        "locale": "en_US",
        "userType": "In SCIM Group",
        "externalId": "00u5hwkpq7IC0H7IS0h7",
        "groups": [],
        "password": "y25bA4W3",
        "active": True,
    }


def okta_spec_unassign() -> dict[str, Any]:
    """The "Unassign user from app" step."""
    return rfc7644_3_5_2_patch({"op": "replace", "value": {"active": False}})


def okta_put_group(group_id: str, name: str, *members: tuple[str, str]) -> dict[str, Any]:
    """Okta: a group push on an integration without group PATCH replaces the whole group.

    https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20 ("Update a specific
    Group name", "Update specific Group membership": PUT /Groups/{id}).
    """
    return {
        "schemas": [GROUP],
        "id": group_id,
        "displayName": name,
        "members": [{"value": value, "display": display} for value, display in members],
    }


# Microsoft Entra ID.
# https://learn.microsoft.com/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
# ("Flags to alter the SCIM behavior": the same change before and after ?aadOptscim062020)
# https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
# (the request/response examples of the provisioning service).


def entra_flagged_replace_many(external_id: str, email: str) -> dict[str, Any]:
    """With the flag: one replace, no path, whose value's keys are attribute paths."""
    return rfc7644_3_5_2_patch(
        {
            "op": "replace",
            "value": {
                "displayName": "Flagged Person",
                'emails[type eq "work"].value': email,
                "name.givenName": "Flagged",
                "name.familyName": "Person",
                "active": True,
                "externalId": external_id,
                f"{ENTERPRISE}:employeeNumber": "E-2",
            },
        }
    )


def entra_flagged_add_single(path: str, value: str) -> dict[str, Any]:
    """With the flag: "add" of a single-valued string attribute, lower-case op."""
    return rfc7644_3_5_2_patch({"op": "add", "path": path, "value": value})


def entra_unflagged_single(op: str, path: str, value: Any) -> dict[str, Any]:
    """Without the flag: a single-valued attribute's value wrapped as [{"value": ...}]
    ("Requests to add a single-value string attribute": "op": "Add", "path": "nickName",
    "value": [{"value": "Babs"}]; the flag sends "value": "Babs")."""
    return rfc7644_3_5_2_patch({"op": op, "path": path, "value": [{"value": value}]})


def entra_flagged_active(value: bool) -> dict[str, Any]:
    """With the flag: a real boolean (without it: "Replace" and the string "False")."""
    return rfc7644_3_5_2_patch({"op": "replace", "path": "active", "value": value})


def entra_flagged_add_members(*user_ids: str) -> dict[str, Any]:
    return rfc7644_3_5_2_patch(
        {"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]}
    )


def entra_flagged_remove_members(*user_ids: str) -> dict[str, Any]:
    """With the flag: one remove per member, by a value filter (without: a value list)."""
    return rfc7644_3_5_2_patch(
        *({"op": "remove", "path": f'members[value eq "{u}"]'} for u in user_ids)
    )


def entra_rename_group(name: str) -> dict[str, Any]:
    """ "Update Group [Non-member attributes]" (the service shows 204; 200 is as good)."""
    return rfc7644_3_5_2_patch({"op": "Replace", "path": "displayName", "value": name})


def entra_create_group_flagged(name: str, external_id: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP, MICROSOFT_GROUP],
        "externalId": external_id,
        "displayName": name,
        "meta": {"resourceType": "Group"},
    }


# OneLogin.
# The sequence: https://github.com/linkyard/scim (OneLoginClientSpec, "Simulates calls as done
# by OneLogin as of 2020-03-21"): lookup, GET /Groups?count=100&startIndex=1, POST /Users,
# POST /Groups, PATCH add members by a value list, PUT of the whole user (as returned, id and
# meta included) for updates and for `active: false`, member removal by a value list before a
# deactivation or DELETE.
# The body: OneLogin's "SCIM Provisioner with SAML (SCIM v2 Enterprise)" JSON template
# (https://onelogin.service-now.com/kb?id=kb_article_view&sysparm_article=KB0013904, and the
# template vendors publish for it, e.g.
# https://www.livingsecurity.com/migration/support/configuring-scim-for-onelogin): a
# parameter the user has no value for is sent as an empty string. OneLogin adds
# "active": true to a create (the linkyard capture's POST body).


def onelogin_enterprise_user(email: str, manager_id: str = "") -> dict[str, Any]:
    """The v2 Enterprise template filled in for a user without title, timezone or city."""
    first, _, last = email.partition("@")[0].partition(".")
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": email,
        "name": {"familyName": last.capitalize(), "givenName": first.capitalize()},
        "title": "",
        "userType": "",
        "timezone": "",
        "emails": [{"value": email, "type": "work", "primary": True}],
        "addresses": [{"locality": "", "region": "", "country": ""}],
        ENTERPRISE: {
            "organization": "",
            "division": "",
            "department": "",
            "manager": {"value": manager_id, "displayName": " "},
        },
        "active": True,
    }


def plain_group(name: str) -> dict[str, Any]:
    """A group create of a name alone (OneLogin, JumpCloud, Rippling)."""
    return {"displayName": name, "schemas": [GROUP]}


def members_by_value_list(op: str, *user_ids: str) -> dict[str, Any]:
    """OneLogin and JumpCloud: "add" and "remove" of members by a value list, no filter
    (Ping and Rippling publish no body; this is also RFC 7644 section 3.5.2's own)."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"value": [{"value": u} for u in user_ids], "op": op, "path": "members"}],
    }


# JumpCloud.
# https://jumpcloud.com/support/provision-and-manage-users-and-groups-in-apps-using-custom-scim-identity-management-integration
# ("A test user and test group are created to test the integration. Both will be deleted if
# the DELETE method is supported"; the admin gives the test user's email). Group members are
# added and removed by a value list without a filter, as Entra ID does before its flag
# (https://app.uni-moni.com/en/kb/sso-setup-jumpcloud).


def jumpcloud_user(email: str, active: bool = True) -> dict[str, Any]:
    first, _, last = email.partition("@")[0].partition(".")
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": first.capitalize(), "familyName": last.capitalize() or "Test"},
        "displayName": f"{first.capitalize()} {last.capitalize()}".strip(),
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": active,
    }


# PingFederate SCIM Provisioner and PingOne outbound provisioning.
# https://docs.pingidentity.com/integrations/scim/pf_scim_connector.html ("PATCH: Users No,
# Groups Yes"; "group filtering by retrieving all groups and finding a match")
# https://docs.pingidentity.com/integrations/scim/pf_scim_connector_user_and_group_management.html
# (users matched by userName; Remove User Action Disable or Delete; "Provision disabled users")
# https://docs.pingidentity.com/pingone/integrations/p1_scim_filter_expressions.html (the
# user filter expression an admin writes, e.g. `username Eq "%s"`, `email Co "%s"`).
PING_FILTER_EXAMPLE = 'username Eq "{}"'


def ping_user(
    user_name: str, email: str, active: bool = True, title: str = "Analyst"
) -> dict[str, Any]:
    """The whole user, as the provisioner sends it on POST and on every update (PUT)."""
    return {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Janet", "familyName": "Smith"},
        "emails": [{"value": email, "type": "work", "primary": True}],
        "title": title,
        "active": active,
    }


def ping_group(name: str, *user_ids: str) -> dict[str, Any]:
    return {"schemas": [GROUP], "displayName": name, "members": [{"value": u} for u in user_ids]}


# Rippling.
# https://workos.com/docs/integrations/rippling-scim (custom app: SCIM 2.0, bearer token,
# "groups, pagination, delete groups and PATCH groups"; attributes externalId,
# emails.primary, name.givenName, name.familyName)
# https://help.kombo.dev/hc/en-us/articles/35612530773521 (the same, plus employeeNumber)
# https://authn-sh-docs.pages.dev/guides/scim/rippling/ (Test connection probes
# GET /ServiceProviderConfig).


def rippling_terminate() -> dict[str, Any]:
    return rfc7644_3_5_2_patch({"op": "replace", "path": "active", "value": False})


def rippling_user(email: str, external_id: str, employee_number: str) -> dict[str, Any]:
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": external_id,
        "userName": email,
        "name": {"givenName": "Rip", "familyName": "Ling"},
        "emails": [{"value": email, "primary": True}],
        "active": True,
        ENTERPRISE: {"employeeNumber": employee_number},
    }


# Microsoft's SCIM validator (https://scimvalidator.microsoft.com), as servers it was run
# against captured its requests: a user of every attribute Entra ID maps, then "Patch User -
# Add Attributes" (to a user created with its userName alone) and "Patch User - Replace
# Attributes", each one request: value paths with `type eq` filters, a role by
# `roles[primary eq "True"]` (display before value), then a value without path whose keys
# are paths. Values are random strings (a profileUrl, a locale that are no URL, no tag).
ENTRA_VALIDATOR_CORE = {
    "active": True,
    "displayName": "XHLNMLCHCDKY",
    "title": "MPNHXUBNKMMT",
    "preferredLanguage": "sr-Latn-RS",
    "name.givenName": "Marianna",
    "name.familyName": "Clarissa",
    "name.formatted": "Augusta",
    "name.middleName": "D'angelo",
    "name.honorificPrefix": "Felix",
    "name.honorificSuffix": "Verona",
    f"{ENTERPRISE}:employeeNumber": "UVFGABTNSFTG",
    f"{ENTERPRISE}:department": "LGAWCIDHVMLI",
    f"{ENTERPRISE}:costCenter": "DOEHSQTDYUNN",
    f"{ENTERPRISE}:organization": "SPQQVVHWJIRG",
    f"{ENTERPRISE}:division": "AYOQREXHSPPI",
    "userType": "CQYGEYKHFCTJ",
    "nickName": "DKYYDYXIFWAM",
    "locale": "EEQKCKVTLCGE",
    "timezone": "Africa/Libreville",
    "profileUrl": "PSEDIKWEYFMO",
}


def entra_validator_user(user_name: str) -> dict[str, Any]:
    """The validator's "Create a new user" body (the core values above, as a document)."""
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "active": True,
        "addresses": [
            {
                "type": "work",
                "formatted": "SMECGTNERCYB",
                "streetAddress": "48051 Wyman Crescent",
                "locality": "KZGMXRWUERYN",
                "region": "OPGOERCMMDMM",
                "postalCode": "sf9 2bi",
                "primary": True,
                "country": "Czech Republic",
            }
        ],
        "displayName": "XHLNMLCHCDKY",
        "emails": [{"type": "work", "value": user_name, "primary": True}],
        "locale": "EEQKCKVTLCGE",
        "name": {"givenName": "Marianna", "familyName": "Clarissa", "formatted": "Augusta"},
        "nickName": "DKYYDYXIFWAM",
        "phoneNumbers": [
            {"type": "work", "value": "18-569-6230", "primary": True},
            {"type": "mobile", "value": "18-569-6230"},
            {"type": "fax", "value": "18-569-6230"},
        ],
        "profileUrl": "PSEDIKWEYFMO",
        "roles": [
            {"primary": True, "display": "LMYZCPJG", "value": "DVILABHT", "type": "DNLVKNPA"}
        ],
        "title": "MPNHXUBNKMMT",
        "userType": "CQYGEYKHFCTJ",
        ENTERPRISE: {"employeeNumber": "UVFGABTNSFTG", "department": "LGAWCIDHVMLI"},
    }


def entra_validator_patch(op: str, email: str, core: dict[str, Any]) -> dict[str, Any]:
    """ "Patch User - Add Attributes" (op "add") or "- Replace Attributes" ("replace")."""
    paths = (
        ('emails[type eq "work"].value', email),
        ('emails[type eq "work"].primary', True),
        ('addresses[type eq "work"].formatted', "VFPRNMVLQPFG"),
        ('addresses[type eq "work"].streetAddress', "116 Towne Summit"),
        ('addresses[type eq "work"].locality', "UQSMOIYPGKQI"),
        ('addresses[type eq "work"].region', "RGSFCPWGLJRP"),
        ('addresses[type eq "work"].postalCode', "wp2 3oc"),
        ('addresses[type eq "work"].primary', True),
        ('addresses[type eq "work"].country', "Namibia"),
        ('phoneNumbers[type eq "work"].value', "33-749-9990"),
        ('phoneNumbers[type eq "work"].primary', True),
        ('phoneNumbers[type eq "mobile"].value', "33-749-9991"),
        ('phoneNumbers[type eq "fax"].value', "33-749-9992"),
        ('roles[primary eq "True"].display', "WMIIFOEB"),
        ('roles[primary eq "True"].value', "JVQBTZOT"),
        ('roles[primary eq "True"].type', "BHOZLXUV"),
    )
    return {
        "Operations": [
            *({"op": op, "path": path, "value": value} for path, value in paths),
            {"op": op, "value": core},
        ],
        "schemas": [PATCH_OP],
    }


# Microsoft's gallery validation (the "SCIM Validation Logic App" an ISV runs before listing
# in the Entra app gallery): github.com/AzureAD/SCIMReferenceCode,
# Microsoft.SCIM.LogicAppValidationTemplate/StandardLogicApp/SCIM-Validation-Test-Overview.md
# and SCIMTests_Workflow.json. Its direct SCIM tests: Schema_Discoverability_Test flattens
# /Schemas (a complex multi-valued attribute into `name[type eq "canonical value"].sub`, or
# `name[primary eq "True"].sub` when `type` has no canonical values; a complex one into
# `name.sub`; an extension's into `urn:…:name`) and wants every mapped target among them;
# SCIM_Null_Update_Test PATCHes each mapped optional target to "" then to null, one
# operation each ("verbose"), or value paths alone and the rest as keys of one value without
# path; SCIM_Update_Manager_Test sets (Add), changes (replace) and clears (replace with "")
# the enterprise manager by a bare id; the pagination tests read startIndex=page*5+1&count=5.

# The targets of Entra ID's default user mappings (use-scim-to-provision-users-and-groups,
# "example of user attributes"; the app role's, customize-application-attributes).
ENTRA_DEFAULT_TARGETS = (
    "userName",
    "active",
    "displayName",
    "title",
    "externalId",
    "preferredLanguage",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    'emails[type eq "work"].value',
    'emails[type eq "other"].value',
    'phoneNumbers[type eq "work"].value',
    'phoneNumbers[type eq "mobile"].value',
    'phoneNumbers[type eq "fax"].value',
    'addresses[type eq "work"].streetAddress',
    'addresses[type eq "work"].locality',
    'addresses[type eq "work"].region',
    'addresses[type eq "work"].postalCode',
    'addresses[type eq "work"].country',
    'addresses[type eq "other"].formatted',
    'roles[primary eq "True"].value',
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:department",
    f"{ENTERPRISE}:manager",
)

ENTRA_DEFAULT_GROUP_TARGETS = ("displayName", "externalId", "members")

# The optional targets SCIM_Null_Update_Test clears: not required, not a reference, not
# userName, active, externalId or roles (value paths first, as its non-verbose body has them).
ENTRA_NULLABLE_PATHS = (
    'phoneNumbers[type eq "mobile"].value',
    'phoneNumbers[type eq "fax"].value',
    'addresses[type eq "work"].postalCode',
    'addresses[type eq "work"].country',
)
ENTRA_NULLABLE_SCALARS = (
    "displayName",
    "title",
    "preferredLanguage",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:department",
)


def flattened_schema_names(schemas: list[dict[str, Any]]) -> set[str]:
    """The attribute names Schema_Discoverability_Test makes of a /Schemas answer."""
    names: set[str] = set()
    for schema in schemas:
        prefix = "" if schema["id"] in (USER, GROUP) else schema["id"] + ":"
        for attribute in schema["attributes"]:
            names |= {prefix + name for name in _flattened(attribute, bool(prefix))}
    return names


def _flattened(attribute: dict[str, Any], extension: bool) -> set[str]:
    name, subs = attribute["name"], attribute.get("subAttributes", [])
    if extension or name in ("manager", "members"):
        return {name}
    if attribute["type"] == "reference":
        return set()
    if attribute["type"] != "complex":
        return {name}
    if not attribute.get("multiValued"):
        return {f"{name}.{s['name']}" for s in subs if s["type"] not in ("complex", "reference")}
    kinds = next((s.get("canonicalValues", []) for s in subs if s["name"] == "type"), [])
    if kinds:
        filterable = [s["name"] for s in subs if s["name"] not in ("type", "primary")]
        return {f'{name}[type eq "{kind}"].{sub}' for kind in kinds for sub in filterable}
    return {f'{name}[primary eq "True"].{s["name"]}' for s in subs if s["name"] != "primary"}


def entra_null_patch(value: Any, verbose: bool) -> dict[str, Any]:
    """SCIM_Null_Update_Test's PATCH: every nullable target to `value` ("" or None)."""
    if verbose:
        targets = ENTRA_NULLABLE_PATHS + ENTRA_NULLABLE_SCALARS
        return rfc7644_3_5_2_patch(*({"op": "replace", "path": t, "value": value} for t in targets))
    return rfc7644_3_5_2_patch(
        *({"op": "replace", "path": t, "value": value} for t in ENTRA_NULLABLE_PATHS),
        {"op": "replace", "value": {t: value for t in ENTRA_NULLABLE_SCALARS}},
    )


def entra_null_read(doc: dict[str, Any], target: str) -> Any:
    """The value SCIM_Null_Update_Test reads back for a target ("" when absent)."""
    if "[type eq " in target:
        name, _, rest = target.partition("[type eq ")
        kind, sub = rest.split('"]', 1)[0].strip('"'), target.rsplit(".", 1)[-1]
        element = next((e for e in doc.get(name, []) if e.get("type") == kind), {})
        return element.get(sub, "")
    if target.startswith("urn:"):
        urn, _, name = target.rpartition(":")
        return doc.get(urn, {}).get(name, "")
    if "." in target:
        outer, inner = target.split(".")
        return doc.get(outer, {}).get(inner, "")
    return doc.get(target, "")
