"""Request bodies as the RFCs and the real IdPs write them, named by RFC section or vendor.

Vendor shapes follow the providers' published SCIM provisioning guides:
- Okta: https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
- Microsoft Entra ID:
  https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
  and https://learn.microsoft.com/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
- OneLogin's SCIM JSON template:
  https://onelogin.service-now.com/kb?id=kb_article_view&sysparm_article=KB0013904
The other IdPs' sequences are in tests/scim/vendor_payloads.py.
"""

from __future__ import annotations

from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def rfc7643_8_2_full_user(
    user_name: str = "bjensen@example.com", manager: str | None = None
) -> dict[str, Any]:
    """RFC 7643 section 8.2 (full user representation); `manager` is another user's id."""
    enterprise: dict[str, Any] = {
        "employeeNumber": "701984",
        "costCenter": "4130",
        "organization": "Universal Studios",
        "division": "Theme Park",
        "department": "Tour Operations",
    }
    if manager is not None:
        enterprise["manager"] = {"value": manager}
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": "701984",
        "userName": user_name,
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "password": "t1meMa$heen",
        "emails": [
            {"value": user_name, "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                "primary": True,
            }
        ],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [
            {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}
        ],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        "active": True,
        ENTERPRISE: enterprise,
    }


def rfc7644_3_5_2_patch(*operations: dict[str, Any]) -> dict[str, Any]:
    """RFC 7644 section 3.5.2: a PatchOp message."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def okta_create_user(email: str, external_id: str = "00u1dhhb1fkIGP7RL1d8") -> dict[str, Any]:
    """Okta: POST /Users after a userName eq lookup found nobody."""
    first = email.partition("@")[0]
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": first.capitalize(), "familyName": "Okta"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{first.capitalize()} Okta",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


def okta_deactivate() -> dict[str, Any]:
    """Okta: deactivation is a PATCH with no path and {"active": false}."""
    return rfc7644_3_5_2_patch({"op": "replace", "value": {"active": False}})


def okta_create_group(name: str) -> dict[str, Any]:
    return {"schemas": [GROUP], "displayName": name, "members": []}


def okta_rename_group(group_id: str, name: str) -> dict[str, Any]:
    """Okta: a group rename PATCH carries the read-only id in its value."""
    return rfc7644_3_5_2_patch({"op": "replace", "value": {"id": group_id, "displayName": name}})


def okta_add_members(*members: tuple[str, str]) -> dict[str, Any]:
    return rfc7644_3_5_2_patch(
        {
            "op": "add",
            "path": "members",
            "value": [{"value": value, "display": display} for value, display in members],
        }
    )


def okta_remove_member(user_id: str) -> dict[str, Any]:
    """Okta: member removal by a value path, members[value eq "..."]."""
    return rfc7644_3_5_2_patch({"op": "remove", "path": f'members[value eq "{user_id}"]'})


def entra_create_user(email: str, external_id: str) -> dict[str, Any]:
    """Microsoft Entra ID: POST /Users (after a userName eq lookup)."""
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": external_id,
        "userName": email,
        "active": True,
        "displayName": "Entra Person",
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Entra Person", "familyName": "Person", "givenName": "Entra"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "E-1", "department": "Engineering"},
    }


def entra_create_group(name: str, external_id: str) -> dict[str, Any]:
    """Entra ID: group creation carries an extra Microsoft schema URN."""
    return {
        "schemas": [GROUP, MICROSOFT_GROUP],
        "externalId": external_id,
        "displayName": name,
        "meta": {"resourceType": "Group"},
    }


def entra_members(op: str, *user_ids: str) -> dict[str, Any]:
    """Entra ID: "Add"/"Remove" members with a value list ($ref null)."""
    return rfc7644_3_5_2_patch(
        {"op": op, "path": "members", "value": [{"$ref": None, "value": u} for u in user_ids]}
    )


def onelogin_create_user(email: str) -> dict[str, Any]:
    """OneLogin: its SCIM JSON template may send emails as one object, not a list."""
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": "One", "familyName": "Login"},
        "emails": {"value": email, "type": "work", "primary": True},
    }
