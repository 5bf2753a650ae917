"""PATCH (RFC 7644 section 3.5.2) applied to a resource's SCIM document, in memory.

`apply_patch` is pure: it returns a new document or raises, so a request's operations
apply all together or not at all (`in_place`: a caller's own working copy is changed
instead, and discarded by it on an error). It tolerates what the IdPs really send: capitalised op
names, a no-path value whose keys are paths, empty or null values meaning unassigned, a
single value wrapped as [{"value": x}], read-only attributes echoed back, and removal of
chosen values of a multi-valued attribute.
`passthrough` names attributes outside the schemas that the caller reads anyway (an
organisation's end-date attribute): they patch like any single-valued attribute.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.scim import filters
from connectors.scim.booleans import boolean_of
from connectors.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
)
from connectors.scim.ids import id_key
from connectors.scim.schemas import (
    COMMON,
    MAX_OPERATIONS,
    MEMBER_VALUE,
    MEMBERS,
    Attribute,
    ResourceKind,
    split_attribute_path,
)

OPS = ("add", "replace", "remove")
_ATTR_PATH = re.compile(
    r"^(?P<attr>[A-Za-z$][\w$-]*)(?:\[(?P<filter>.*)\])?(?:\.(?P<sub>[A-Za-z$][\w$-]*))?$",
    re.DOTALL,
)
# Read-only attributes an IdP may echo back inside a value (Okta sends the group id).
_ECHOED = frozenset({"id", "schemas", "meta"})


@dataclass(frozen=True)
class Path:
    """A parsed PATCH path: in which schema, which attribute, which values, which part."""

    urn: str | None  # an extension schema; None for the core schema
    attr: str | None  # None: the whole extension object
    attribute: Attribute | None  # None: a pass-through attribute
    value_filter: Any = None
    sub: str | None = None
    ignored: bool = False  # an extension this server does not know: ignored safely


def apply_patch(
    document: dict[str, Any],
    operations: Any,
    kind: ResourceKind,
    passthrough: tuple[str, ...] = (),
    *,
    in_place: bool = False,
) -> dict[str, Any]:
    """The document after every operation, or an error and no change at all. `in_place`:
    the document is the caller's own copy, changed rather than copied (a copy of a user's
    document cost more than rendering it)."""
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("Operations must be a non-empty list")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidSyntax(f"at most {MAX_OPERATIONS} operations per request")
    patched = document if in_place else copy.deepcopy(document)
    engine = _Engine(kind, passthrough)
    for operation in operations:
        engine.apply(patched, operation)
    engine.check_made()
    return patched


def parse_path(kind: ResourceKind, text: str) -> Path:
    """A PATCH path of this kind of resource, as apply_patch reads it (or its error)."""
    return _Engine(kind).parse_path(text)


class _Engine:
    def __init__(self, kind: ResourceKind, passthrough: tuple[str, ...] = ()) -> None:
        self.kind = kind
        # "urn:…:name" or a core "name", lowered -> (its URN or None, its name)
        self.passthrough = {path.lower(): split_attribute_path(path) for path in passthrough}
        self.passthrough_urns = {urn.lower(): urn for urn, _ in self.passthrough.values() if urn}
        self.made: list[tuple[Attribute, dict[str, Any]]] = []  # by value paths matching none

    def check_made(self) -> None:
        """A value made by a value path that matched nothing must have its `value` once every
        operation is applied: `emails[type eq "x"].type` alone has no email to make (RFC 7644
        section 3.5.2.3), while the validator of Entra ID sets `roles[primary eq "True"]`'s
        `display` before its `value` in one request."""
        for attribute, element in self.made:
            if attribute.lacks_its_value(element):
                raise NoTarget(f"no value of {attribute.name} matches the filter")

    def apply(self, doc: dict[str, Any], operation: Any) -> None:
        if not isinstance(operation, dict):
            raise InvalidSyntax("each operation must be an object")
        fields = {str(key).lower(): value for key, value in operation.items()}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in OPS:
            raise InvalidSyntax(f"op must be one of add, replace, remove; got {op!r}")
        op = op.lower()
        path, value = fields.get("path"), fields.get("value")
        if op != "remove" and "value" not in fields:
            # RFC 7644 sections 3.5.2.1 and 3.5.2.3: add and replace MUST carry a value; read
            # as null, an add of members without one removed every member.
            raise InvalidValue(f"{op} needs a value")
        if path is None or (isinstance(path, str) and not path.strip()):
            self._without_path(doc, op, value)
            return
        if not isinstance(path, str):
            raise InvalidPath("path must be a string")
        self.at(doc, op, self.parse_path(path), value, explicit=True)

    def _without_path(self, doc: dict[str, Any], op: str, value: Any) -> None:
        if op == "remove":
            raise NoTarget("remove needs a path")
        if not isinstance(value, dict):
            raise InvalidValue(f"{op} without a path needs an object value")
        for key, item in value.items():
            if str(key).lower() in _ECHOED:
                continue
            # Entra sends keys that are paths ("name.givenName", "urn:...:User:department").
            self.at(doc, op, self.key_path(str(key)), item, explicit=False)

    def key_path(self, key: str) -> Path:
        """A key of an operation's value object as a path. One naming no attribute is the
        value's fault, not the path's: invalidValue (RFC 7644 section 3.12, "not compatible
        with the resource schema"; scim2-server answers so), where it was invalidPath."""
        try:
            return self.parse_path(key)
        except InvalidPath as error:
            raise InvalidValue(error.message) from None

    def parse_path(self, text: str) -> Path:
        text = text.strip()
        known = self._passthrough(text)
        if known is not None:
            return known
        lowered = text.lower()
        urn: str | None = None
        schema = self.kind.schema
        if lowered == self.kind.schema.id.lower():
            return Path(None, None, None)  # the core schema's attributes, in one object
        for extension in self.kind.extensions:
            if lowered == extension.id.lower():
                return Path(extension.id, None, None)
            if lowered.startswith(extension.id.lower() + ":"):
                urn, schema, text = extension.id, extension, text[len(extension.id) + 1 :]
                break
        else:
            if lowered.startswith(self.kind.schema.id.lower() + ":"):
                text = text[len(self.kind.schema.id) + 1 :]
            elif lowered.startswith("urn:"):
                return Path(None, None, None, ignored=True)
        match = _ATTR_PATH.match(text)
        if match is None:
            raise InvalidPath(f"{text!r} is not a valid attribute path")
        name = match["attr"]
        attribute = schema.attribute(name) or (_common(name) if urn is None else None)
        if attribute is None:
            key = (f"{urn}:" if urn else "") + name
            raise InvalidPath(f"{key} is not an attribute of {self.kind.name}")
        name = attribute.name
        value_filter = filters.parse(match["filter"]) if match["filter"] is not None else None
        if value_filter is not None and not attribute.multi_valued:
            # RFC 7644 section 3.5.2: a value filter selects values of a multi-valued attribute
            raise InvalidFilter(f"{name} is single-valued: it takes no value filter")
        if value_filter is not None and attribute.sub_attributes:
            _check_compared(attribute, value_filter)
        sub = match["sub"]
        if sub is not None and attribute is not None and attribute.sub_attributes:
            sub_attribute = attribute.sub(sub)
            if sub_attribute is None:
                raise InvalidPath(f"{name} has no sub-attribute {sub}")
            sub = sub_attribute.name
        return Path(urn, name, attribute, value_filter, sub)

    def _passthrough(self, text: str) -> Path | None:
        """The path of a pass-through attribute, or of the whole extension holding one."""
        lowered = text.lower()
        core_prefix = self.kind.schema.id.lower() + ":"
        if lowered.startswith(core_prefix):
            lowered = lowered[len(core_prefix) :]
        if lowered in self.passthrough:
            urn, name = self.passthrough[lowered]
            return Path(urn, name, None)
        if lowered in self.passthrough_urns:
            return Path(self.passthrough_urns[lowered], None, None)
        return None

    def at(self, doc: dict[str, Any], op: str, path: Path, value: Any, *, explicit: bool) -> None:
        if path.ignored:
            return
        if path.attr is None:
            self._schema_object(doc, op, path, value)
            return
        if path.attribute is not None and path.attribute.mutability == "readOnly":
            if explicit:
                raise Mutability(f"{path.attr} is read-only")
            return
        _check_immutable(path)
        container = self._container(doc, path, create=op != "remove")
        if container is None:
            return
        key = _key(container, path.attr)
        value = _unwrapped(path, value)
        _check_required(path, op)
        if op != "remove" and _unassigned(value):
            if op == "add" and _whole_multi(path):
                raise InvalidValue(f"add to {path.attr} needs the values to add")
            op, value = "remove", None  # Entra: an empty string or null means unassigned
        multi = _is_multi(path, container.get(key), value)
        primaries = _primaries(container.get(key)) if multi and op != "remove" else None
        if path.value_filter is not None:
            self._filtered(container, key, op, path, value)
        elif path.sub is not None:
            self._sub_attribute(container, key, op, path.sub, value, multi)
        elif op == "remove":
            self._remove(container, key, value, multi, path.attribute)
        elif multi:
            self._multi(container, key, op, value, path.attribute)
        elif isinstance(value, dict) and isinstance(container.get(key), dict):
            container[key] = _merge(container[key], value)
        else:
            container[key] = value
        if primaries is not None:
            _one_primary(container.get(key), primaries)
        if path.urn is not None and not doc.get(path.urn):
            doc.pop(path.urn, None)

    def _schema_object(self, doc: dict[str, Any], op: str, path: Path, value: Any) -> None:
        """An object of one schema's attributes: an extension's, or the core schema's named
        by its URN (`{"urn:…:core:2.0:User": {"active": false}}`), each key applied as a
        path of that schema (RFC 7644 section 3.10; scim2-server applies both). Ignored, a
        deactivation so written was answered 200 and left the person active."""
        urn = path.urn or self.kind.schema.id
        if op == "remove":
            if path.urn is None:
                raise Mutability(
                    f"{urn} holds required attributes: remove its attributes one by one"
                )
            doc.pop(path.urn, None)
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"the value for {urn} must be an object")
        for key, item in value.items():
            if str(key).lower() in _ECHOED:
                continue
            self.at(doc, op, self.key_path(f"{urn}:{key}"), item, explicit=False)

    @staticmethod
    def _container(doc: dict[str, Any], path: Path, *, create: bool) -> dict[str, Any] | None:
        if path.urn is None:
            return doc
        key = _key(doc, path.urn)
        if not isinstance(doc.get(key), dict):
            if not create:
                return None
            doc[key] = {}
        container: dict[str, Any] = doc[key]
        return container

    @staticmethod
    def _remove(
        container: dict[str, Any], key: str, value: Any, multi: bool, attribute: Attribute | None
    ) -> None:
        if multi and value is not None and isinstance(container.get(key), list):
            # Entra's "Remove members" with a value list removes those members, not all; an
            # empty list removes none (it removed every member, as a remove without value).
            doomed = value if isinstance(value, list) else [value]
            identity = value_identity(attribute)
            kept, gone = value_keys(container[key], identity), value_keys(doomed, identity)
            if kept is not None and gone is not None:  # _same is equality of the values
                leaving = set(gone)
                container[key] = [
                    e for e, v in zip(container[key], kept, strict=True) if v not in leaving
                ]
            else:
                container[key] = [
                    e for e in container[key] if not any(_same(e, d, identity) for d in doomed)
                ]
            if not container[key]:
                container.pop(key)
            return
        container.pop(key, None)

    @staticmethod
    def _multi(
        container: dict[str, Any], key: str, op: str, value: Any, attribute: Attribute | None
    ) -> None:
        values = value if isinstance(value, list) else [value]
        if op == "replace":
            container[key] = list(values)
            return
        current = list(container.get(key) or [])
        identity = value_identity(attribute)
        held, adding = value_keys(current, identity), value_keys(values, identity)
        if held is not None and adding is not None:  # _same is equality of the values
            at = {item_value: position for position, item_value in reversed(list(enumerate(held)))}
            for item, item_value in zip(values, adding, strict=True):
                if item_value in at:
                    _update(current[at[item_value]], item, attribute)
                else:
                    at[item_value] = len(current)
                    current.append(item)
        else:
            for item in values:
                same = next((e for e in current if _same(e, item, identity)), None)
                if same is None:
                    current.append(item)
                else:
                    _update(same, item, attribute)
        container[key] = current

    @staticmethod
    def _sub_attribute(
        container: dict[str, Any], key: str, op: str, sub: str, value: Any, multi: bool
    ) -> None:
        current = container.get(key)
        if multi:
            for element in current or []:
                if isinstance(element, dict):
                    _set_sub(element, sub, None if op == "remove" else value)
            return
        if not isinstance(current, dict):
            if op == "remove":
                return
            current = {} if current is None else {"value": current}  # manager: "id" form
            container[key] = current
        _set_sub(current, sub, None if op == "remove" else value)
        if not current:
            container.pop(key)

    def _filtered(
        self, container: dict[str, Any], key: str, op: str, path: Path, value: Any
    ) -> None:
        current = container.get(key)
        elements: list[Any] = current if isinstance(current, list) else [current] if current else []
        chosen = [e for e in elements if filters.matches(path.value_filter, e, path.attribute)]
        if op == "remove":
            if path.sub is None:
                elements = [e for e in elements if not any(e is c for c in chosen)]
            else:
                for element in chosen:
                    _set_sub(element, path.sub, None)
        elif chosen:
            for element in chosen:
                if path.sub is not None:
                    _set_sub(element, path.sub, value)
                elif isinstance(value, dict):
                    _check_kept(path, element, value)
                    element.update(_merge(element, value))
                else:
                    raise InvalidValue(f"the value for {key}[...] must be an object")
        else:
            # Entra and Okta set emails[type eq "work"].value before any work email exists.
            pinned = filters.equalities(path.value_filter)
            if pinned is None:
                raise NoTarget(f"no value of {key} matches the filter")
            element = dict(pinned)
            if path.sub is not None:
                element[path.sub] = value
            elif isinstance(value, dict):
                element.update(value)
            else:
                raise InvalidValue(f"the value for {key}[...] must be an object")
            if path.attribute is not None:
                self.made.append((path.attribute, element))
            elements.append(element)
        if elements:
            container[key] = elements
        else:
            container.pop(key, None)


def _check_compared(attribute: Attribute, value_filter: Any) -> None:
    """RFC 7644 section 3.5.2: a value filter naming no sub-attribute of the attribute, or
    comparing one with a value of another type (`emails[type eq 5]`), is invalidFilter, as
    in a query. `emails[shoe eq "x"].value` matched nothing, so an add or replace made a
    new email of it."""
    for name, op, value in filters.comparisons(value_filter):
        sub = attribute.sub(name)
        if sub is None:
            raise InvalidFilter(f"{attribute.name} has no sub-attribute {name}")
        filters.check_operand(sub.type, op, value)


def _check_required(path: Path, op: str) -> None:
    """RFC 7644 section 3.5.2.2: removing a required single-valued attribute (userName,
    active, a group's displayName) is mutability. A null or empty value (Entra's way to
    unassign) keeps its own checks: an empty userName is invalidValue, a null active no
    change."""
    attribute = path.attribute
    if (
        op == "remove"
        and attribute is not None
        and attribute.required
        and not attribute.multi_valued
        and path.sub is None
        and path.value_filter is None
    ):
        raise Mutability(f"{attribute.name} is required and cannot be removed")


def _immutable(path: Path, sub: str) -> bool:
    found = path.attribute.sub(sub) if path.attribute is not None else None
    return found is not None and found.mutability == "immutable"


def _check_immutable(path: Path) -> None:
    """RFC 7643 section 2.2: an immutable sub-attribute (a group member's `value`) is set
    with the value it belongs to and never written after. `add members.value` wrote it on
    every member at once: the group kept one member, the others were dropped."""
    if path.sub is not None and _immutable(path, path.sub):
        raise Mutability(f"{path.attr}.{path.sub} is immutable: add or remove {path.attr} instead")


def _check_kept(path: Path, element: dict[str, Any], value: dict[str, Any]) -> None:
    """A filtered replace may not change an immutable sub-attribute of the values it picks."""
    for key, item in value.items():
        current = next((v for k, v in element.items() if k.lower() == str(key).lower()), None)
        if _immutable(path, str(key)) and item != current:
            raise Mutability(f"{path.attr}.{key} is immutable: add or remove {path.attr} instead")


def _common(name: str) -> Attribute | None:
    wanted = name.lower()
    return next((a for a in COMMON if a.name.lower() == wanted), None)


def _key(container: dict[str, Any], name: str) -> str:
    """The key already used for this attribute (names are case-insensitive), or the name."""
    wanted = name.lower()
    for key in list(container):
        if key.lower() == wanted:
            if key != name:
                container[name] = container.pop(key)
            return name
    return name


def _unwrapped(path: Path, value: Any) -> Any:
    """Entra ID without aadOptscim062020 wraps a single value (of an attribute, or of a
    sub-attribute: `phoneNumbers[type eq "work"].value`) as [{"value": x}] or
    [{"$ref": null, "value": x}]: x (or, for a complex attribute such as manager,
    {"value": x})."""
    if path.attribute is None or (path.attribute.multi_valued and path.sub is None):
        return value
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)):
        return value
    (only,) = value
    fields = {str(key).lower(): item for key, item in only.items()}
    if "$ref" in fields and fields["$ref"] is None:
        del fields["$ref"]
    if list(fields) != ["value"]:
        return value
    complex_whole = path.attribute.sub_attributes and path.sub is None
    return {"value": fields["value"]} if complex_whole else fields["value"]


def _whole_multi(path: Path) -> bool:
    """The path names a whole multi-valued attribute (`members`, not `emails[…].value`)."""
    return (
        path.attribute is not None
        and path.attribute.multi_valued
        and path.sub is None
        and path.value_filter is None
    )


def _unassigned(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _is_multi(path: Path, current: Any, value: Any) -> bool:
    if path.attribute is not None:
        return path.attribute.multi_valued
    return isinstance(current, list) or isinstance(value, list)


def _set_sub(element: dict[str, Any], sub: str, value: Any) -> None:
    key = _key(element, sub)
    if _unassigned(value):
        element.pop(key, None)
    else:
        element[key] = value


def _is_primary(element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    flag = next((v for k, v in element.items() if str(k).lower() == "primary"), None)
    return boolean_of(flag) is True


def _primaries(values: Any) -> list[int]:
    """The identities of the values marked primary before an operation."""
    return [id(e) for e in values if _is_primary(e)] if isinstance(values, list) else []


def _one_primary(values: Any, before: list[int]) -> None:
    """RFC 7644 section 3.5.2: an operation that sets a value's primary to true sets it
    false on every other value of the attribute (the former primary no longer is)."""
    if not isinstance(values, list):
        return
    marked = [e for e in values if _is_primary(e)]
    if not any(id(e) not in before for e in marked):
        return  # the operation made no value primary
    for element in marked:
        if id(element) in before:
            element[_key(element, "primary")] = False


def _update(element: Any, added: Any, attribute: Attribute | None) -> None:
    """An `add` of a value the attribute already has (the same `value`) sets the writable
    sub-attributes it carries on that value, rather than dropping them: `add emails
    [{"value": <an email the user has>, "primary": true}]` makes that email primary (and the
    former primary not, RFC 7644 section 3.5.2) instead of answering 200 and changing nothing.
    Immutable sub-attributes (a member's `type`) and unknown ones are left as they are."""
    if not isinstance(element, dict) or not isinstance(added, dict) or attribute is None:
        return
    for name, item in added.items():
        sub = attribute.sub(str(name))
        if sub is None or sub.name == "value" or sub.mutability in ("immutable", "readOnly"):
            continue
        _set_sub(element, sub.name, item)


def _merge(current: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, item in value.items():
        merged[_key(merged, str(key))] = item
    return {k: v for k, v in merged.items() if not _unassigned(v)}


def _as_sent(value: Any) -> Any:
    return value


def _member_key(value: Any) -> Any:
    return id_key(value, case_exact=MEMBER_VALUE.case_exact)


def value_identity(attribute: Attribute | None) -> Callable[[Any], Any]:
    """What tells two values of a multi-valued attribute apart: a group's members by the id
    they name (`members.value` is caseExact false, as a filter on it reads it), others by
    their `value` as sent."""
    return _member_key if attribute is MEMBERS else _as_sent


def value_keys(items: list[Any], identity: Callable[[Any], Any] = _as_sent) -> list[Any] | None:
    """Each item's `value` (its name in any case) as `identity` reads it, when every item is
    an object with a hashable, non-null one: _same of two such items is then equality of
    these, which a set answers at once (a PATCH adding 1,000 members to 1,000 compared them
    pairwise, a million _same calls). None otherwise: the caller compares pairwise."""
    keys = []
    for item in items:
        if not isinstance(item, dict):
            return None
        found = next((v for k, v in item.items() if k.lower() == "value"), None)
        if found is None or not isinstance(found, str | int):
            return None
        keys.append(identity(found))
    return keys


def _same(left: Any, right: Any, identity: Callable[[Any], Any] = _as_sent) -> bool:
    """Two values of a multi-valued attribute are the same when their `value`s are equal."""
    if isinstance(left, dict) and isinstance(right, dict):
        lv = next((v for k, v in left.items() if k.lower() == "value"), None)
        rv = next((v for k, v in right.items() if k.lower() == "value"), None)
        if lv is not None or rv is not None:
            return bool(identity(lv) == identity(rv))
    if isinstance(left, dict) and not isinstance(right, dict):
        return bool(identity(left.get("value")) == identity(right))
    return bool(left == right)
