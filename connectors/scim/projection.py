"""`attributes` and `excludedAttributes` (RFC 7644 section 3.9) applied to a rendered resource.

Names may be short (`name.familyName`, `employeeNumber`) or fully qualified with their
schema URN (`urn:ietf:params:scim:schemas:core:2.0:User:name.familyName`); an extension
URN alone names the whole extension, and the core schema's URN alone every core attribute.
The projection only selects: the resource, and so its version, is rendered whole before it
(see provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.scim.schemas import COMMON, ResourceKind

# Returned whatever the projection asks (RFC 7643 "returned": "always", and the envelope).
# `meta` is not: its sub-attributes are "returned": "default" (RFC 7643 section 3.1), so
# `attributes` without it leaves it out and `excludedAttributes=meta` removes it.
ALWAYS_RETURNED = frozenset({"id", "schemas"})


@dataclass(frozen=True)
class Projection:
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.attributes or self.excluded)


@dataclass(frozen=True)
class _Name:
    """One projected name: the schema it is in, the attribute (None: the whole extension)
    and the sub-attribute, all as the schema spells them."""

    schema: str
    attribute: str | None
    sub: str | None


def project(document: dict[str, Any], projection: Projection, kind: ResourceKind) -> dict[str, Any]:
    if projection.attributes:
        names = [n for n in (_resolve(a, kind) for a in projection.attributes) if n is not None]
        return _finish(_included(document, names, kind), kind)
    if projection.excluded:
        names = [n for n in (_resolve(a, kind) for a in projection.excluded) if n is not None]
        return _finish(_excluded(document, names, kind), kind)
    return document


def _resolve(text: str, kind: ResourceKind) -> _Name | None:
    """The schema, attribute and sub-attribute a name means for this kind; None if nothing."""
    lowered = text.strip().lower()
    schema = kind.schema
    for candidate in (kind.schema, *kind.extensions):
        urn = candidate.id.lower()
        if lowered == urn:
            return _Name(candidate.id, None, None)
        if lowered.startswith(urn + ":"):
            schema, lowered = candidate, lowered[len(urn) + 1 :]
            break
    else:
        if lowered.startswith("urn:"):
            return None
    attribute_name, _, sub_name = lowered.partition(".")
    attribute = schema.attribute(attribute_name)
    if attribute is None and schema is kind.schema:
        attribute = next((a for a in COMMON if a.name.lower() == attribute_name), None)
        if attribute is None:  # a short name of an extension attribute
            for extension in kind.extensions:
                attribute = extension.attribute(attribute_name)
                if attribute is not None:
                    schema = extension
                    break
    if attribute is None:
        return None
    sub = attribute.sub(sub_name) if sub_name else None
    if sub_name and sub is None:
        return None
    return _Name(schema.id, attribute.name, sub.name if sub else None)


def _included(document: dict[str, Any], names: list[_Name], kind: ResourceKind) -> dict[str, Any]:
    result = {k: v for k, v in document.items() if k in ALWAYS_RETURNED}
    for name in names:
        container, target = _containers(document, result, name, kind)
        if container is None or target is None:
            continue
        if name.attribute is None:
            target.update(_schema_part(container, name.schema, kind))
        elif name.attribute in container:
            value = container[name.attribute]
            if name.sub is None:
                target[name.attribute] = value
            elif target.get(name.attribute) is not value:  # not already selected whole
                target[name.attribute] = _merge_sub(target.get(name.attribute), value, name.sub)
    return result


def _schema_part(container: dict[str, Any], schema: str, kind: ResourceKind) -> dict[str, Any]:
    """What a schema URN alone names: the whole extension, or for the core schema every
    attribute outside the extensions (the common ones with it, RFC 7643 section 3.1)."""
    if schema != kind.schema.id:
        return container
    extensions = {extension.id for extension in kind.extensions}
    return {k: v for k, v in container.items() if k not in extensions}


def _merge_sub(current: Any, value: Any, sub: str) -> Any:
    """`value` reduced to `sub`, added to what is already selected of it."""
    if isinstance(value, dict):
        merged = dict(current or {})
        if sub in value:
            merged[sub] = value[sub]
        return merged
    if isinstance(value, list):
        previous = current if isinstance(current, list) else [{} for _ in value]
        return [
            {
                **before,
                **({sub: element[sub]} if isinstance(element, dict) and sub in element else {}),
            }
            for before, element in zip(previous, value, strict=False)
        ]
    return current


def _excluded(document: dict[str, Any], names: list[_Name], kind: ResourceKind) -> dict[str, Any]:
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in document.items()}
    for name in names:
        if name.schema == kind.schema.id:
            container: dict[str, Any] | None = result
        else:
            container = result.get(name.schema)
        if container is None:
            continue
        if name.attribute is None:
            result.pop(name.schema, None)
        elif name.sub is None:
            if container is not result or name.attribute not in ALWAYS_RETURNED:
                container.pop(name.attribute, None)
        else:
            value = container.get(name.attribute)
            if isinstance(value, dict):
                container[name.attribute] = {k: v for k, v in value.items() if k != name.sub}
            elif isinstance(value, list):
                reduced = [
                    {k: v for k, v in e.items() if k != name.sub} if isinstance(e, dict) else e
                    for e in value
                ]
                container[name.attribute] = [e for e in reduced if e != {}]
    return result


def _containers(
    document: dict[str, Any], result: dict[str, Any], name: _Name, kind: ResourceKind
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Where the attribute is in the document, and where it goes in the result."""
    if name.schema == kind.schema.id:
        return document, result
    source = document.get(name.schema)
    if not isinstance(source, dict):
        return None, None
    return source, result.setdefault(name.schema, {})


def _finish(result: dict[str, Any], kind: ResourceKind) -> dict[str, Any]:
    """Drop emptied values and extensions, and list only the schemas still present."""
    for key, value in list(result.items()):
        if isinstance(value, list) and key not in ALWAYS_RETURNED:
            result[key] = [e for e in value if e != {}]
    for key in list(result):
        if key not in ALWAYS_RETURNED and result[key] in ({}, []):
            result.pop(key)
    for extension in kind.extensions:
        inner = result.get(extension.id)
        if isinstance(inner, dict):
            for key in [k for k, v in inner.items() if v in ({}, [])]:
                inner.pop(key)
            if not inner:
                result.pop(extension.id)
    if isinstance(result.get("schemas"), list):
        result["schemas"] = [s for s in result["schemas"] if s == kind.schema.id or s in result]
    return result
