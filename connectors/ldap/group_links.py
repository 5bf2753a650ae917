"""Which directory groups a mapping key names, found by stable id once known.

An admin maps a group by its name or DN; the first read that finds exactly one group for
that key binds the key to the group's stable id (entryUUID, objectGUID). Later reads find
the group by that id, so a group renamed or moved keeps its team and role: the key is
renamed to what the directory calls the group now, never emptied and refilled. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.ldap.mapping import Group, is_valid_dn, normalize_dn
from connectors.ldap.plan import GroupRename
from connectors.name_keys import name_key


@dataclass(slots=True)
class GroupLinks:
    """The groups (by normalised DN) each mapping key names in one read, and the bindings."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    bound: dict[str, str] = field(default_factory=dict)  # key -> stable id, as of this read
    renames: list[GroupRename] = field(default_factory=list)

    def named(self, mapping: dict[str, str]) -> Iterable[tuple[str, str]]:
        """(group key, mapped value) for each group a mapping names."""
        for key, value in mapping.items():
            for group in self.groups.get(key, ()):
                yield group, value


def link_groups(groups: dict[str, Group], keys: Iterable[str], bound: dict[str, str]) -> GroupLinks:
    """The groups each of `keys` names: the group of its bound stable id when that one was
    read, else those of that name or DN (bound when there is exactly one)."""
    by_id = {group.external_id: group for group in groups.values() if group.external_id}
    by_name: dict[str, list[Group]] = {}
    for group in groups.values():
        by_name.setdefault(name_key(group.name.strip()), []).append(group)
    keys = list(dict.fromkeys(keys))
    links = GroupLinks()
    for key in keys:
        held = by_id.get(bound.get(key, ""))
        if held is not None:
            links.groups[key] = [held.key]
            links.bound[key] = held.external_id
            if not _names(key, held):
                # Planned whatever the mapping holds: whether the key follows the group is
                # the apply's rule alone (models.directory.apply), which audits a rename it
                # does not follow (the new name mapped already, the old one no longer).
                after = held.dn if _is_dn(key) else held.name
                rename = GroupRename(
                    external_id=held.external_id, before=key, after=after, dn=held.dn
                )
                links.renames.append(rename)
            continue
        found = list(by_name.get(name_key(key.strip()), ()))
        by_dn = groups.get(normalize_dn(key))
        if by_dn is not None and by_dn not in found:
            found.append(by_dn)
        links.groups[key] = [group.key for group in found]
        if len(found) == 1 and found[0].external_id:
            links.bound[key] = found[0].external_id
    return links


def _names(key: str, group: Group) -> bool:
    """Whether a mapping key names this group by its name or its DN, in any case."""
    return name_key(key.strip()) == name_key(group.name.strip()) or normalize_dn(key) == group.key


def _is_dn(key: str) -> bool:
    return "=" in key and is_valid_dn(key)
