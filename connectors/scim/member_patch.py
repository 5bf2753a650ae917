"""A group PATCH that only adds and removes members, read as a change of membership.

`apply_patch` works on the whole group, so adding one member to a group of N renders, patches
and compares N members. The operations Okta and Entra ID send for membership (`add members`
with a list, `remove members` with a list, `remove members[value eq "id"]`) need only the
members they name: `member_steps` recognises a request made only of those, and
`MemberSteps.change` gives what `apply_patch` would have made of it, from the current
membership of the values it touches alone. Anything else (other attributes, other filters,
empty or odd values) is left to `apply_patch`: None. tests/scim/test_member_patch.py holds
the two to the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.scim import filters
from connectors.scim.casting import member_id
from connectors.scim.errors import ScimError
from connectors.scim.patch import OPS, parse_path, value_identity, value_keys
from connectors.scim.schemas import GROUP_KIND, MAX_OPERATIONS, MEMBERS

# A member's value as apply_patch tells members apart: the id it names, in any case.
_member_key = value_identity(MEMBERS)


@dataclass(frozen=True)
class AddMembers:
    items: list[Any]  # objects, each with a value
    values: list[Any]  # each item's value, as value_keys reads a member's


@dataclass(frozen=True)
class RemoveMembers:
    values: list[Any]  # a member goes when its value is exactly one of these


@dataclass(frozen=True)
class RemoveMatching:
    value_filter: Any  # a filter pinning `value` alone (`value eq "id"`)
    value: Any


Step = AddMembers | RemoveMembers | RemoveMatching


@dataclass(frozen=True)
class MemberChange:
    """The members the PATCH adds (their ids as sent, checked as a member is) and the
    current members it removes (their ids as rendered)."""

    added: tuple[str, ...]
    removed: frozenset[str]


@dataclass(frozen=True)
class MemberSteps:
    steps: tuple[Step, ...]

    def touched(self) -> set[str]:
        """The member values whose current membership decides the change."""
        found: set[str] = set()
        for step in self.steps:
            if isinstance(step, RemoveMatching):
                if isinstance(step.value, str):
                    found.add(_member_key(step.value))
            else:
                found.update(v for v in step.values if isinstance(v, str))
        return found

    def change(self, members: set[str]) -> MemberChange:
        """The change, given which of the touched values are members now."""
        added: dict[Any, dict[str, Any]] = {}
        removed: set[str] = set()

        def present(value: Any) -> bool:
            return value in added or (value in members and value not in removed)

        for step in self.steps:
            if isinstance(step, AddMembers):
                for item, value in zip(step.items, step.values, strict=True):
                    if not present(value):
                        added[value] = item
            elif isinstance(step, RemoveMembers):
                for value in step.values:
                    _drop(value, added, members, removed)
            else:
                _drop_matching(step, added, members, removed)
        return MemberChange(
            tuple(dict.fromkeys(member_id(i) for i in added.values())), frozenset(removed)
        )


def _drop(
    value: Any, added: dict[Any, dict[str, Any]], members: set[str], removed: set[str]
) -> None:
    if value in added:
        del added[value]
    elif value in members:
        removed.add(value)


def _drop_matching(
    step: RemoveMatching, added: dict[Any, dict[str, Any]], members: set[str], removed: set[str]
) -> None:
    for value, item in list(added.items()):
        if filters.matches(step.value_filter, item, MEMBERS):
            del added[value]
    if not isinstance(step.value, str):
        return
    rendered = _member_key(step.value)
    if rendered in members and filters.matches(step.value_filter, {"value": rendered}, MEMBERS):
        removed.add(rendered)


def member_steps(operations: Any) -> MemberSteps | None:
    """The operations as membership steps, or None when any of them is more than that."""
    if not isinstance(operations, list) or not 0 < len(operations) <= MAX_OPERATIONS:
        return None
    steps = []
    for operation in operations:
        step = _step(operation)
        if step is None:
            return None
        steps.append(step)
    return MemberSteps(tuple(steps))


def _step(operation: Any) -> Step | None:
    if not isinstance(operation, dict):
        return None
    fields: dict[str, Any] = {str(key).lower(): value for key, value in operation.items()}
    op, path, value = fields.get("op"), fields.get("path"), fields.get("value")
    if not isinstance(op, str) or op.lower() not in OPS or not isinstance(path, str):
        return None
    try:
        parsed = parse_path(GROUP_KIND, path)
    except ScimError:
        return None  # apply_patch says what is wrong with it
    if parsed.attr != "members" or parsed.urn is not None or parsed.sub is not None:
        return None
    op = op.lower()
    if parsed.value_filter is not None:
        return _remove_matching(parsed.value_filter) if op == "remove" and value is None else None
    values = _member_values(value)
    if values is None or op == "replace" or not isinstance(value, list):
        return None
    return AddMembers(value, values) if op == "add" else RemoveMembers(values)


def _remove_matching(value_filter: Any) -> RemoveMatching | None:
    pinned = filters.equalities(value_filter)
    if pinned is None or [key.lower() for key in pinned] != ["value"]:
        return None
    return RemoveMatching(value_filter, next(iter(pinned.values())))


def _member_values(value: Any) -> list[Any] | None:
    """Each member's value, when the value is a non-empty list of objects with one each."""
    if not isinstance(value, list) or not value:
        return None
    return value_keys(value, _member_key)
