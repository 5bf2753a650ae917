"""The schemas, resource types and service provider configuration this server publishes.

They advertise exactly what odock-sync stores and filters on; the attribute definitions also
drive case-insensitive attribute names, mutability checks and the PATCH engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

MAX_RESULTS = 1000
MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    case_exact: bool = False
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    # Read and written, but left out of /Schemas: not in the RFC, and clients that build
    # models from the schema (scim2-models) do not take every extension attribute.
    published: bool = True

    def sub(self, name: str) -> Attribute | None:
        return _by_name(self.sub_attributes, name)

    def lacks_its_value(self, element: Any) -> bool:
        """Whether an element of this attribute, which has a `value` (a phone number, a
        role), is without it: no element at all. An address has no `value`, so never."""
        if self.sub("value") is None or not isinstance(element, dict):
            return False
        found = next((v for k, v in element.items() if str(k).lower() == "value"), None)
        return found is None or (isinstance(found, str) and not found.strip())

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub_attributes:
            doc["subAttributes"] = [sub.document() for sub in self.sub_attributes]
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        return doc


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...] = field(default_factory=tuple)
    # Common attributes (RFC 7643 section 3.1) this schema also lists, as the section lets
    # it: read through COMMON, shown here for the clients that look for them in /Schemas.
    listed_common: tuple[Attribute, ...] = ()

    def attribute(self, name: str) -> Attribute | None:
        return _by_name(self.attributes, name)

    def document(self, base_url: str) -> dict[str, Any]:
        listed = (*self.listed_common, *self.attributes)
        return {
            "schemas": [SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.document() for a in listed if a.published],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


def _by_name(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    wanted = name.lower()
    return next((a for a in attributes if a.name.lower() == wanted), None)


def _ref(name: str, *types: str, mutability: str = "readWrite") -> Attribute:
    return Attribute(name, type="reference", reference_types=types, mutability=mutability)


def _multi(name: str, kinds: tuple[str, ...] = (), value: Attribute | None = None) -> Attribute:
    """A multi-valued complex attribute of RFC 7643 section 2.4: value, display, type, primary."""
    return Attribute(
        name,
        type="complex",
        multi_valued=True,
        sub_attributes=(
            value or Attribute("value"),
            Attribute("display"),
            Attribute("type", canonical_values=kinds),
            Attribute("primary", type="boolean"),
        ),
    )


# References to a resource by its id: caseExact false (RFC 7643 section 8.7.1), so they name
# it in any case, though only in the form it is rendered in (connectors.scim.ids). Filters,
# PATCH and writes read these definitions, so /Schemas says what the server does.
GROUPS_VALUE = Attribute("value", mutability="readOnly")
MANAGER_VALUE = Attribute("value")
MEMBER_VALUE = Attribute("value", mutability="immutable")

# Microsoft's Entra gallery validation looks for every mapped target in /Schemas, and Entra
# ID maps externalId by default (mailNickname for users, objectId for groups).
EXTERNAL_ID = Attribute("externalId", case_exact=True)

# RFC 7643 section 4.1, less what odock-sync cannot keep: emails.display and groups.type.
USER_SCHEMA = Schema(
    USER,
    "User",
    "User Account",
    (
        Attribute("userName", required=True, uniqueness="server"),
        Attribute(
            "name",
            type="complex",
            sub_attributes=(
                Attribute("formatted"),
                Attribute("familyName"),
                Attribute("givenName"),
                Attribute("middleName"),
                Attribute("honorificPrefix"),
                Attribute("honorificSuffix"),
            ),
        ),
        Attribute("displayName"),
        Attribute("nickName"),
        # URLs, caseExact false as RFC 7643 section 8.7.1 publishes them (filters follow).
        _ref("profileUrl", "external"),
        Attribute("title"),
        Attribute("userType"),
        Attribute("preferredLanguage"),
        Attribute("locale"),
        Attribute("timezone"),
        Attribute(
            "active",
            type="boolean",
            required=True,  # a user is always active or not; omitted on create means true
            description="false revokes the user (as an admin revocation); true reactivates",
        ),
        Attribute(
            "password",
            mutability="writeOnly",
            returned="never",
            case_exact=True,
            description="Accepted and discarded: odock-sync never holds passwords",
        ),
        Attribute(
            "emails",
            type="complex",
            multi_valued=True,
            required=True,  # odock-sync users need an email (or an email as userName)
            description="Email addresses; the primary (else the first) is the user's email",
            sub_attributes=(
                Attribute("value", required=True),
                Attribute("type", canonical_values=("work", "home", "other")),
                Attribute("primary", type="boolean"),
            ),
        ),
        _multi("phoneNumbers", ("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi(
            "photos",
            ("photo", "thumbnail"),
            _ref("value", "external"),
        ),
        Attribute(
            "addresses",
            type="complex",
            multi_valued=True,
            sub_attributes=(
                Attribute("formatted"),
                Attribute("streetAddress"),
                Attribute("locality"),
                Attribute("region"),
                Attribute("postalCode"),
                Attribute("country"),
                Attribute("type", canonical_values=("work", "home", "other")),
                Attribute("primary", type="boolean"),
            ),
        ),
        Attribute(
            "groups",
            type="complex",
            multi_valued=True,
            mutability="readOnly",
            sub_attributes=(
                GROUPS_VALUE,
                _ref("$ref", "Group", mutability="readOnly"),
                Attribute("display", mutability="readOnly"),
            ),
        ),
        _multi("entitlements"),
        _multi("roles"),
        _multi("x509Certificates", value=Attribute("value", type="binary", case_exact=True)),
    ),
    listed_common=(EXTERNAL_ID,),
)

ENTERPRISE_SCHEMA = Schema(
    ENTERPRISE,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attribute("employeeNumber"),
        Attribute("costCenter"),
        Attribute("organization"),
        Attribute("division"),
        Attribute("department"),
        Attribute(
            "manager",
            type="complex",
            description="Another user of this organisation, by its SCIM id",
            sub_attributes=(MANAGER_VALUE, _ref("$ref", "User")),
        ),
        # Not in RFC 7643; Entra ID's leave date, mapped here, ends the person's access then.
        Attribute(
            "employeeLeaveDateTime",
            type="dateTime",
            description="When the person's access ends (revoked then); empty: never",
            published=False,
        ),
    ),
)

MEMBERS = Attribute(
    "members",
    type="complex",
    multi_valued=True,
    sub_attributes=(
        MEMBER_VALUE,
        _ref("$ref", "User", mutability="immutable"),
        Attribute("type", mutability="immutable", canonical_values=("User",)),
    ),
)

GROUP_SCHEMA = Schema(
    GROUP,
    "Group",
    "Group",
    (
        Attribute("displayName", required=True, uniqueness="server"),
        MEMBERS,
    ),
    listed_common=(EXTERNAL_ID,),
)

# Attributes every resource has (RFC 7643 section 3.1); the schemas list externalId alone.
COMMON = (
    Attribute("id", mutability="readOnly", returned="always", case_exact=True),
    EXTERNAL_ID,
    Attribute(
        "meta",
        type="complex",
        mutability="readOnly",
        sub_attributes=tuple(
            Attribute(name, mutability="readOnly", case_exact=True)
            for name in ("resourceType", "created", "lastModified", "location", "version")
        ),
    ),
    Attribute("schemas", multi_valued=True, mutability="readOnly"),
)

SCHEMAS = (USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA)


@dataclass(frozen=True)
class ResourceKind:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    def document(self, base_url: str) -> dict[str, Any]:
        return {
            "schemas": [RESOURCE_TYPE],
            "id": self.name,
            "name": self.name,
            "endpoint": f"/{self.endpoint}",
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url}/ResourceTypes/{self.name}",
            },
        }

    def schema_for(self, urn: str) -> Schema | None:
        wanted = urn.lower()
        return next((s for s in (self.schema, *self.extensions) if s.id.lower() == wanted), None)


USER_KIND = ResourceKind("User", "Users", USER_SCHEMA, (ENTERPRISE_SCHEMA,))
GROUP_KIND = ResourceKind("Group", "Groups", GROUP_SCHEMA)


# Every read of a user asks (its projection needs the type), with one of the few attributes
# organisations configure: the answer is kept, as the types are frozen.
@lru_cache(maxsize=256)
def user_kind(access_end_attribute: str) -> ResourceKind:
    """The User resource type of an organisation whose IdP sends the access end date in an
    extension of its own: that extension is one of the type's (RFC 7643 section 3), so
    /ResourceTypes lists it, /Schemas describes the date and projections select it."""
    urn, name = split_attribute_path(access_end_attribute)
    known = {schema.id.lower() for schema in (USER_SCHEMA, *USER_KIND.extensions)}
    if urn is None or urn.lower() in known:
        return USER_KIND
    date = Attribute(
        name, type="dateTime", description="When the person's access ends (revoked then)"
    )
    extension = Schema(urn, "AccessEnd", "The organisation's access end date attribute", (date,))
    return replace(USER_KIND, extensions=(*USER_KIND.extensions, extension))


KINDS = (USER_KIND, GROUP_KIND)


def service_provider_config(base_url: str, docs_url: str) -> dict[str, Any]:
    """The ServiceProviderConfig; `docs_url` empty: no documentationUri (it is optional)."""
    documented = {"documentationUri": docs_url} if docs_url else {}
    return {
        "schemas": [SPC],
        **documented,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-organisation SCIM token (token create --scope scim)",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                **documented,
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def split_attribute_path(path: str) -> tuple[str | None, str]:
    """(the extension's URN or None for the core schema, the attribute's name)."""
    if not path.lower().startswith("urn:"):
        return None, path
    urn, _, name = path.rpartition(":")
    return (None if urn.lower() == USER.lower() else urn), name
