"""A directory sync's plan: typed items, one class per kind of change, and their JSON form.

A plan is stored on its run as JSON (whole while it waits for an admin, cut down once
applied) and read back to be applied; `to_dict` and `from_dict` keep the shape the API and
stored runs use. The items are slotted: a first import plans a hundred thousand creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

Item = TypeVar("Item", bound="PlanItem")


class PlanItem:
    """The JSON form of an item: every field, except optional ones left at their default."""

    __slots__ = ()
    # fields not written while they hold their default ("" or False): the stored shape
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"access_ends_at", "role", "removed"})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if spec.name in self.OPTIONAL and value == spec.default:
                continue
            data[spec.name] = dict(value) if isinstance(value, dict) else value
        return data

    @classmethod
    def from_dict(cls: type[Item], data: dict[str, Any]) -> Item:
        known = {spec.name for spec in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(slots=True, kw_only=True)
class Entry(PlanItem):
    """A directory entry the plan brings in; `role` is set once the groups are read."""

    external_id: str
    dn: str
    email: str
    name: str
    access_ends_at: str | None = ""  # ISO 8601 UTC, from the entry's expiry; None: unknown
    role: str = ""


@dataclass(slots=True, kw_only=True)
class Create(Entry):
    """A person to create."""


@dataclass(slots=True, kw_only=True)
class Link(Entry):
    """A person who has an account no source manages (found by email): link it."""

    user_id: str


@dataclass(slots=True, kw_only=True)
class Relink(Entry):
    """A re-hire: the user linked to an entry that is gone moves to this new entry."""

    user_id: str
    previous_external_id: str
    previous_dn: str


@dataclass(slots=True, frozen=True, kw_only=True)
class Reactivate(PlanItem):
    user_id: str
    external_id: str
    email: str


@dataclass(slots=True, frozen=True, kw_only=True)
class Revoke(PlanItem):
    user_id: str
    external_id: str
    email: str
    reason: str
    removed: bool = False  # gone from the directory: its identity link is marked deleted

    @property
    def read_as_ended(self) -> bool:
        """The directory said so (an entry read disabled or expired, an end date it set that
        has passed): not an absence, which a read that went wrong can also make."""
        return not self.removed


@dataclass(slots=True, frozen=True, kw_only=True)
class Update(PlanItem):
    """Changed attributes of a user this connector owns: field -> [before, after]."""

    user_id: str
    external_id: str
    email: str
    dn: str
    fields: dict[str, list[str]]

    def new(self, name: str) -> str | None:
        """The directory's value of a changed field, None when that field did not change."""
        change = self.fields.get(name)
        return change[1] if change is not None else None

    @property
    def lifts_end_date(self) -> bool:
        """The directory's end date for this person cleared or moved later: access that
        lasts longer (ISO 8601 UTC strings of one shape compare as the moments do)."""
        before, after = self.fields.get("access_ends_at") or ("", "")
        return bool(before) and (not after or after > before)


@dataclass(slots=True, frozen=True, kw_only=True)
class RoleChange(PlanItem):
    user_id: str
    external_id: str
    role: str
    previous: str
    demotion: bool


@dataclass(slots=True, frozen=True, kw_only=True)
class TeamAdd(PlanItem):
    team: str
    external_id: str
    role: str  # the team role: MEMBER


@dataclass(slots=True, frozen=True, kw_only=True)
class TeamRemove(PlanItem):
    team: str
    external_id: str


@dataclass(slots=True, frozen=True, kw_only=True)
class TeamRetire(PlanItem):
    team: str


@dataclass(slots=True, frozen=True, kw_only=True)
class GroupRename(PlanItem):
    """A mapped group found by its stable id under another name or DN: the mapping's key
    (`before`, as the admin wrote it) becomes the group's name or DN now (`after`)."""

    external_id: str
    before: str
    after: str
    dn: str


@dataclass(slots=True, frozen=True, kw_only=True)
class EntryError(PlanItem):
    """An entry the plan leaves alone, and why (unreadable, a duplicate, someone else's)."""

    dn: str
    external_id: str | None
    message: str


@dataclass(slots=True, frozen=True, kw_only=True)
class GroupCount(PlanItem):
    """A mapped team or role as a read found it: how many are in the team through the
    directory, or hold the role, now (`current`), and how many its groups give it
    (`desired`: for a role, the people for whom it is the highest)."""

    name: str
    current: int
    desired: int


@dataclass(slots=True, frozen=True, kw_only=True)
class EmptyGroup(PlanItem):
    """A group filling a team or role (a mapping key, or a group nested in its groups) that
    held members at the last applied run and now holds no member value, or is not found,
    and the team or role it fills: what an ACL hiding `member` looks like."""

    group: str
    team: str = ""
    role: str = ""


def apply_error(item: PlanItem | None, message: str) -> dict[str, Any]:
    """An item refused at apply, as the run reports it (`apply_errors`): the entry's stable id
    and DN where the item has them (a team retirement names no one; a revocation, a role or
    a membership change names the person by stable id only), and why."""
    return {
        "external_id": getattr(item, "external_id", None),
        "dn": getattr(item, "dn", None) or None,
        "message": message,
    }


# the plan's lists of items, by name: what each holds
ITEM_TYPES: dict[str, type[PlanItem]] = {
    "creates": Create,
    "links": Link,
    "relinks": Relink,
    "updates": Update,
    "revokes": Revoke,
    "holds": Revoke,
    "revoked_while_held": Revoke,
    "reactivates": Reactivate,
    "roles": RoleChange,
    "team_adds": TeamAdd,
    "team_removes": TeamRemove,
    "team_retires": TeamRetire,
    "group_renames": GroupRename,
    "errors": EntryError,
    "team_counts": GroupCount,
    "role_counts": GroupCount,
    "empty_groups": EmptyGroup,
}


@dataclass
class Plan:
    kind: str = "full"
    creates: list[Create] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    # re-hires: a user whose entry is gone, moved to the new entry with their email
    relinks: list[Relink] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    revokes: list[Revoke] = field(default_factory=list)
    # people another source revoked whom the directory now says are inactive too: it stands
    # beside that source (the lifecycle policy), nobody loses access, so no threshold counts it
    holds: list[Revoke] = field(default_factory=list)
    # leavers revoked at once though the rest of the plan waits for an admin
    # (models.directory.safety.leavers_who_cannot_wait)
    revoked_while_held: list[Revoke] = field(default_factory=list)
    reactivates: list[Reactivate] = field(default_factory=list)
    roles: list[RoleChange] = field(default_factory=list)
    team_adds: list[TeamAdd] = field(default_factory=list)
    team_removes: list[TeamRemove] = field(default_factory=list)
    team_retires: list[TeamRetire] = field(default_factory=list)
    group_renames: list[GroupRename] = field(default_factory=list)
    # mapping key -> stable id of the one group it names in this read (empty: none read)
    group_ids: dict[str, str] = field(default_factory=dict)
    errors: list[EntryError] = field(default_factory=list)
    read: int = 0
    unchanged: int = 0
    skipped: int = 0
    deprovision_blocked: str = ""
    # destructive changes left out because the read cannot prove them (kind -> count)
    withheld: dict[str, int] = field(default_factory=dict)
    # What the read found of what the connector holds, for the gate on reads that come back
    # empty (models.directory.safety.emptied). people_linked: the linked active people a
    # complete full read looked for (None: no such read), people_seen: how many it found.
    people_linked: int | None = None
    people_seen: int = 0
    team_counts: list[GroupCount] = field(default_factory=list)  # the mapped teams
    role_counts: list[GroupCount] = field(default_factory=list)  # the mapped roles
    empty_groups: list[EmptyGroup] = field(default_factory=list)  # filled before, now nobody
    # the groups filling mapped teams and roles that held members in this read (stable id,
    # else normalised DN): the next read tells a group emptied from one always empty
    filled_groups: list[str] = field(default_factory=list)
    watermark: str = ""

    @property
    def demotions(self) -> int:
        return sum(1 for item in self.roles if item.demotion)

    @property
    def end_date_clears(self) -> int:
        return sum(1 for item in self.updates if item.lifts_end_date)

    def to_dict(self, *, keep: int | None = None) -> dict[str, Any]:
        """A JSON-ready copy; with `keep`, long lists are cut and their full length noted."""
        data: dict[str, Any] = {}
        cut: dict[str, int] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, list):
                if keep is not None and len(value) > keep:
                    cut[name] = len(value)
                    value = value[:keep]
                value = [item.to_dict() for item in value] if name in ITEM_TYPES else list(value)
            elif isinstance(value, dict):
                value = dict(value)
            data[name] = value
        if keep is not None:
            data["truncated"] = cut
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("truncated"):
            raise ValueError("a truncated plan cannot be applied")
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in data:
                continue
            item_type = ITEM_TYPES.get(name)
            value = data[name]
            values[name] = [item_type.from_dict(v) for v in value] if item_type else value
        return cls(**values)

    def summary(self) -> dict[str, int]:
        return {
            "read": self.read,
            "create": len(self.creates),
            "link": len(self.links),
            "relink": len(self.relinks),
            "update": len(self.updates),
            "revoke": len(self.revokes),
            "hold": len(self.holds),
            "revoked_while_held": len(self.revoked_while_held),
            "reactivate": len(self.reactivates),
            "role": len(self.roles),
            "team_add": len(self.team_adds),
            "team_remove": len(self.team_removes),
            "team_retire": len(self.team_retires),
            "demote": self.demotions,
            "end_date_clear": self.end_date_clears,
            "withheld": sum(self.withheld.values()),
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": len(self.errors),
        }
