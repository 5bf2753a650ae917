"""SCIM documents to domain fields and back: pure functions named by direction.

Reading is lenient where the IdPs differ (attribute-name case, "True"/"False" strings,
OneLogin's emails as one object, a manager as a bare id or {value}, empty meaning
unassigned, unknown extensions) and strict where the domain needs a value (userName, an
email, displayName).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.name_keys import composed
from connectors.scim.booleans import boolean_of
from connectors.scim.errors import InvalidSyntax, InvalidValue
from connectors.scim.fields import ScimEmailValue, ScimGroupFields, ScimUserFields
from connectors.scim.schemas import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    GROUP,
    USER,
    USER_SCHEMA,
    Attribute,
    split_attribute_path,
)

# Attributes kept in their own columns (or discarded, or derived); every other attribute of
# the User and enterprise schemas is kept, validated against its definition, in `extra`.
_CORE_COLUMNS = frozenset(
    {"username", "name", "displayname", "emails", "active", "groups", "password"}
)
_NAME_COLUMNS = frozenset({"formatted", "familyname", "givenname"})
_ENTERPRISE_COLUMNS = frozenset(
    {"employeenumber", "department", "manager", "employeeleavedatetime"}
)
# Where the date a person's access ends is read from unless the organisation names another.
ACCESS_END_ATTRIBUTE = f"{ENTERPRISE}:employeeLeaveDateTime"
MAX_STRING = 255
MAX_EXTRA_STRING = 2048  # addresses, URLs
MAX_BINARY = 16384  # a base64 X.509 certificate


@dataclass(frozen=True)
class GroupRef:
    id: str
    display: str


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A group member as the group shows it: its SCIM id (the document has no display)."""

    id: str


# --- the pieces of a SCIM document -------------------------------------------------------


def with_meta(
    doc: dict[str, Any],
    resource_type: str,
    created: datetime,
    modified: datetime,
    base: str,
    version: str | None = None,
) -> dict[str, Any]:
    doc["meta"] = {
        "resourceType": resource_type,
        "created": timestamp(created),
        "lastModified": timestamp(modified),
        "location": f"{base}/{doc['id']}",
        "version": version or version_of(doc),
    }
    return doc


def version_of(doc: dict[str, Any]) -> str:
    """A weak ETag over the resource's content (meta aside): it changes with any change."""
    content = {k: v for k, v in doc.items() if k != "meta"}
    digest = hashlib.blake2b(
        json.dumps(content, sort_keys=True, default=str).encode(), digest_size=10
    )
    return f'W/"{digest.hexdigest()}"'


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def put_at(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set a core attribute or one of an extension (`urn:…:User:name`)."""
    urn, name = split_attribute_path(path)
    if urn is None:
        doc[name] = value
        return
    if urn not in doc["schemas"]:
        doc["schemas"].append(urn)
    doc.setdefault(urn, {})[name] = value


def put(doc: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        doc[key] = value


def compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


# --- SCIM -> domain --------------------------------------------------------------------

_NAME_ATTRIBUTES = next(a for a in USER_SCHEMA.attributes if a.name == "name").sub_attributes


def scim_to_user_fields(
    doc: Any, access_end_attribute: str | None = ACCESS_END_ATTRIBUTE
) -> ScimUserFields:
    """The fields of a User document; its access end date from `access_end_attribute`, or
    left unread with None (for access_end once the attribute is known)."""
    if not isinstance(doc, dict):
        raise InvalidSyntax("a User must be a JSON object")
    check_schemas(doc, USER)
    core = _lower_keys(doc)
    enterprise = _lower_keys(_object(_find_ci(doc, ENTERPRISE), ENTERPRISE))
    name = _lower_keys(_object(core.get("name"), "name"))
    user_name = _key_string(core.get("username"), "userName")
    if user_name is None:
        raise InvalidValue("userName is required")
    extra = _kept_in_extra(core, USER_SCHEMA.attributes, _CORE_COLUMNS)
    name_extra = _kept_in_extra(name, _NAME_ATTRIBUTES, _NAME_COLUMNS, "name.")
    if name_extra:
        extra["name"] = name_extra
    enterprise_extra = _kept_in_extra(enterprise, ENTERPRISE_SCHEMA.attributes, _ENTERPRISE_COLUMNS)
    if enterprise_extra:
        extra[ENTERPRISE] = enterprise_extra
    return ScimUserFields(
        user_name=user_name,
        external_id=_string(core.get("externalid"), "externalId"),
        given_name=_string(name.get("givenname"), "name.givenName", 200),
        family_name=_string(name.get("familyname"), "name.familyName", 200),
        formatted_name=_string(name.get("formatted"), "name.formatted", 400),
        display_name=_string(core.get("displayname"), "displayName", 200),
        emails=_emails(core.get("emails")),
        active=_boolean(core.get("active"), "active"),
        employee_number=_string(enterprise.get("employeenumber"), "employeeNumber", 100),
        department=_string(enterprise.get("department"), "department", 200),
        manager_id=_manager(enterprise.get("manager")),
        access_ends_at=None
        if access_end_attribute is None
        else access_end(doc, access_end_attribute),
        extra=extra,
    )


def access_end(doc: dict[str, Any], path: str) -> datetime | None:
    urn, name = split_attribute_path(path)
    container = doc if urn is None else _object(_find_ci(doc, urn), urn)
    return _date_time(_find_ci(container, name), path)


def _date_time(value: Any, name: str) -> datetime | None:
    """An xsd:dateTime with its zone ("2027-01-31T17:00:00Z"); empty means none."""
    text = _string(value, name, 64)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{name} must be a date and time like 2027-01-31T17:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidValue(f"{name} must carry a time zone (e.g. a trailing Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is past the last year a date holds
        raise InvalidValue(f"{name} is out of range") from None


def _kept_in_extra(
    fields: dict[str, Any],
    attributes: tuple[Attribute, ...],
    columns: frozenset[str],
    prefix: str = "",
) -> dict[str, Any]:
    """The schema's attributes that have no column, each checked against its definition."""
    kept: dict[str, Any] = {}
    for attribute in attributes:
        key = attribute.name.lower()
        if key in columns or key not in fields:
            continue
        value = _attribute_value(attribute, fields[key], prefix + attribute.name)
        if value not in (None, [], {}):
            kept[attribute.name] = value
    return kept


def _attribute_value(attribute: Attribute, value: Any, label: str) -> Any:
    if not attribute.multi_valued:
        return _single_value(attribute, value, label)
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list) else [value]
    elements = [_single_value(attribute, item, label) for item in items]
    # OneLogin's template sends a phone the person has not as {"value": "", "type": "work"}.
    elements = [e for e in elements if e not in (None, {}) and not attribute.lacks_its_value(e)]
    if sum(isinstance(e, dict) and e.get("primary") is True for e in elements) > 1:
        raise InvalidValue(f"only one of {label} can be primary")
    return elements


def _single_value(attribute: Attribute, value: Any, label: str) -> Any:
    if attribute.type == "complex":
        fields = _lower_keys(_object(value, label))
        element: dict[str, Any] = {}
        for sub in attribute.sub_attributes:
            if sub.name.lower() in fields:
                kept = _single_value(sub, fields[sub.name.lower()], f"{label}.{sub.name}")
                if kept is not None:
                    element[sub.name] = kept
        return element
    if attribute.type == "boolean":
        return _boolean(value, label)
    limit = MAX_BINARY if attribute.type == "binary" else MAX_EXTRA_STRING
    return _string(value, label, limit)


def scim_to_group_fields(doc: Any) -> ScimGroupFields:
    if not isinstance(doc, dict):
        raise InvalidSyntax("a Group must be a JSON object")
    check_schemas(doc, GROUP)
    core = _lower_keys(doc)
    display_name = _key_string(core.get("displayname"), "displayName", 200)
    if display_name is None:
        raise InvalidValue("displayName is required")
    members = core.get("members")
    member_ids: tuple[str, ...] = ()
    if members is not None:
        if isinstance(members, dict):
            members = [members]
        if not isinstance(members, list):
            raise InvalidValue("members must be a list")
        member_ids = tuple(dict.fromkeys(member_id(m) for m in members))
    return ScimGroupFields(
        display_name=display_name,
        external_id=_string(core.get("externalid"), "externalId"),
        member_ids=member_ids,
    )


def check_schemas(doc: dict[str, Any], base: str) -> None:
    """A body may leave `schemas` out, but one that lists schemas must list its own (RFC
    7643 section 3, RFC 7644 section 3.5.2): a Group's URN on a User is refused, not read
    as a User, and so is a body nesting its own attributes under its schema's URN
    (invalidSyntax, as scim2-server answers both)."""
    if _find_ci(doc, base) is not None:
        # Not read as the resource's own attributes, nor ignored as an unknown extension: a
        # PUT of {"urn:…:core:2.0:User": {"active": false}} kept the person active.
        raise InvalidSyntax(f"the attributes of {base} are written at the top level")
    listed = _find_ci(doc, "schemas")
    if listed in (None, []):
        return
    if not isinstance(listed, list) or base.lower() not in {str(s).lower() for s in listed}:
        raise InvalidSyntax(f"schemas must contain {base}")


def member_id(member: Any) -> str:
    if isinstance(member, str) and member:
        return member
    if not isinstance(member, dict):
        raise InvalidValue("each member must be an object with a value")
    fields = _lower_keys(member)
    kind = fields.get("type")
    if isinstance(kind, str) and kind.lower() == "group":
        raise InvalidValue("nested groups are not supported; members must be users")
    value = _string(fields.get("value"), "members.value")
    if value is None:
        raise InvalidValue("each member needs a value (the user id)")
    return value


def _emails(value: Any) -> tuple[ScimEmailValue, ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, dict):  # OneLogin sends one email as an object
        value = [value]
    if not isinstance(value, list):  # RFC 7643 section 2.4; a bare address is no email
        raise InvalidValue("emails must be a list")
    emails: list[ScimEmailValue] = []
    seen: set[tuple[str, str | None]] = set()
    for item in value:
        fields = _lower_keys(_object(item, "emails"))
        address = _key_string(fields.get("value"), "emails.value", 320)
        if address is None:
            continue
        kind = _string(fields.get("type"), "emails.type", 32)
        kind = kind.lower() if kind else None
        if (address.lower(), kind) in seen:
            continue
        seen.add((address.lower(), kind))
        primary = _boolean(fields.get("primary"), "emails.primary")
        emails.append(ScimEmailValue(address, kind, primary))
    if sum(bool(e.primary) for e in emails) > 1:
        raise InvalidValue("only one email can be primary")
    return tuple(emails)


def _manager(value: Any) -> str | None:
    if isinstance(value, dict):
        value = _lower_keys(value).get("value")
    return _string(value, "manager")


def _boolean(value: Any, name: str) -> bool | None:
    """Booleans, and the strings "True"/"False" Entra sends for them."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    boolean = boolean_of(value)
    if boolean is None:
        raise InvalidValue(f"{name} must be true or false, not {value!r}")
    return boolean


def _string(value: Any, name: str, limit: int = MAX_STRING) -> str | None:
    """A string attribute (RFC 7643 section 2.3.1: a JSON string). A number, a boolean, a
    list or an object is refused, not converted: `"userName": 123` is not the name "123"
    (the reference scim2-models refuses it alike)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{name} must be a string, not a JSON {_json_type(value)}")
    text = as_stored(value)
    if not text:
        return None
    if len(text.lower()) > limit or len(text) > limit:  # keys are stored lowercased
        raise InvalidValue(f"{name} is longer than {limit} characters (in lower case)")
    if "\x00" in text:
        raise InvalidValue(f"{name} contains a NUL character")
    return text


def as_stored(text: str) -> str:
    """A SCIM string as it is kept: without the whitespace around it, so an IdP's group
    "Sales Team " is "Sales Team" (and a filter for what the IdP sent compares alike)."""
    return text.strip()


def _key_string(value: Any, name: str, limit: int = MAX_STRING) -> str | None:
    """A string that names someone or something uniquely (userName, an email, a group's
    displayName), in Unicode's composed form: see composed."""
    text = _string(value, name, limit)
    return None if text is None else composed(text)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"


def _object(value: Any, name: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(f"{name} must be an object")
    return value


def _lower_keys(value: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()}


def _find_ci(doc: dict[str, Any], key: str) -> Any:
    wanted = key.lower()
    return next((v for k, v in doc.items() if str(k).lower() == wanted), None)
