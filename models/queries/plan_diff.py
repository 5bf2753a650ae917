"""A directory run's stored plan as people read it: who is created, updated, revoked,
reactivated, moved between teams, given another role or demoted, and what was held back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.entities import DirectorySyncRun, IdentityLink, User

LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Person:
    label: str  # email, or the directory's id when the person is not known yet
    user_id: str | None = None


@dataclass(frozen=True)
class Change:
    person: Person
    detail: str = ""


@dataclass(frozen=True)
class UnusedEntry:
    """An entry the plan left alone: its DN (empty when the read could not tell it), and why."""

    dn: str
    message: str


@dataclass
class PlanDiff:
    created: list[Change] = field(default_factory=list)
    linked: list[Change] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    revoked: list[Change] = field(default_factory=list)
    held_out: list[Change] = field(default_factory=list)  # revoked by another source already
    reactivated: list[Change] = field(default_factory=list)
    moved: list[Change] = field(default_factory=list)
    joined: list[Change] = field(default_factory=list)
    left: list[Change] = field(default_factory=list)
    demoted: list[Change] = field(default_factory=list)
    promoted: list[Change] = field(default_factory=list)
    teams_retired: list[str] = field(default_factory=list)
    errors: list[UnusedEntry] = field(default_factory=list)
    apply_errors: list[str] = field(default_factory=list)  # refused at apply: DN, then why
    warnings: list[str] = field(default_factory=list)  # withheld, emptied groups, blocked
    dropped: dict[str, int] = field(default_factory=dict)  # held changes no longer called for
    truncated: dict[str, int] = field(default_factory=dict)

    def sections(self) -> list[tuple[str, str, list[Change]]]:
        """(id, heading, changes) in the order a reviewer reads them: the destructive first."""
        return [
            ("revoked", "Revoked", self.revoked),
            ("demoted", "Demoted", self.demoted),
            ("moved", "Moved between teams", self.moved),
            ("left", "Removed from a team", self.left),
            ("created", "Created", self.created),
            ("linked", "Linked to an existing account", self.linked),
            ("reactivated", "Reactivated", self.reactivated),
            ("held_out", "Held out beside another source's revocation", self.held_out),
            ("updated", "Updated", self.updated),
            ("joined", "Added to a team", self.joined),
            ("promoted", "Given another role", self.promoted),
        ]


def plan_diff(session: Session, run: DirectorySyncRun) -> PlanDiff:
    plan: dict[str, Any] = run.plan or {}
    people = _people(session, run, plan)

    def who(item: dict[str, Any]) -> Person:
        known = people.get(item.get("external_id", ""))
        if item.get("email"):
            user_id = _id_text(item.get("user_id")) or (known.user_id if known else None)
            return Person(item["email"], user_id)
        return known or Person(item.get("external_id", "?"))

    diff = PlanDiff(
        created=[Change(who(i), _role(i)) for i in plan.get("creates", [])],
        linked=[Change(who(i), _role(i)) for i in plan.get("links", []) + plan.get("relinks", [])],
        updated=[Change(who(i), _fields(i.get("fields", {}))) for i in plan.get("updates", [])],
        revoked=[Change(who(i), i.get("reason", "")) for i in plan.get("revokes", [])],
        reactivated=[Change(who(i)) for i in plan.get("reactivates", [])],
        held_out=[Change(who(i), i.get("reason", "")) for i in plan.get("holds", [])],
        teams_retired=[str(i.get("team", i.get("name", ""))) for i in plan.get("team_retires", [])],
        errors=[
            UnusedEntry(str(i.get("dn") or ""), str(i.get("message", "")))
            for i in plan.get("errors", [])
        ],
        apply_errors=[_apply_error(i) for i in plan.get("apply_errors", [])],
        dropped=dict(plan.get("dropped_counts") or {}),
        truncated=dict(plan.get("truncated") or {}),
    )
    _memberships(diff, plan, who)
    for item in plan.get("roles", []):
        change = Change(who(item), f"{item.get('previous', '?')} → {item.get('role', '?')}")
        (diff.demoted if item.get("demotion") else diff.promoted).append(change)
    diff.warnings = _warnings(plan)
    return diff


def _memberships(diff: PlanDiff, plan: dict[str, Any], who: Any) -> None:
    """A person removed from one team and added to another in the same plan has moved."""
    adds: dict[str, list[dict[str, Any]]] = {}
    for item in plan.get("team_adds", []):
        adds.setdefault(item.get("external_id", ""), []).append(item)
    for item in plan.get("team_removes", []):
        joined = adds.get(item.get("external_id", ""))
        if joined:
            to = joined.pop(0)
            diff.moved.append(Change(who(item), f"{item.get('team')} → {to.get('team')}"))
        else:
            diff.left.append(Change(who(item), str(item.get("team", ""))))
    for items in adds.values():
        diff.joined.extend(Change(who(item), str(item.get("team", ""))) for item in items)


def _warnings(plan: dict[str, Any]) -> list[str]:
    notes = []
    if plan.get("deprovision_blocked"):
        notes.append(f"Deprovisioning withheld: {plan['deprovision_blocked']}")
    for kind, count in sorted((plan.get("withheld") or {}).items()):
        notes.append(f"{count} {kind.replace('_', ' ')} withheld (the read cannot prove them)")
    notes.extend(str(note) for note in plan.get("emptied", []))
    return notes


def _apply_error(item: dict[str, Any]) -> str:
    """`dn: why`; without a DN (a team, a person named by stable id only) the id, or just why."""
    who = item.get("dn") or item.get("external_id")
    message = str(item.get("message", ""))
    return f"{who}: {message}" if who else message


def _id_text(value: Any) -> str | None:
    """A stored user id (plans keep them as hex) in the usual dashed form."""
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def _role(item: dict[str, Any]) -> str:
    return f"as {item['role']}" if item.get("role") else ""


def _fields(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {old or '—'} → {new or '—'}" for name, (old, new) in fields.items())


def _people(session: Session, run: DirectorySyncRun, plan: dict[str, Any]) -> dict[str, Person]:
    """The connector's people named in the plan by their directory id only."""
    wanted = sorted(
        {
            item["external_id"]
            for name in ("team_adds", "team_removes", "roles")
            for item in plan.get(name, [])
            if item.get("external_id")
        }
    )
    found: dict[str, Person] = {
        item["external_id"]: Person(item["email"])
        for item in plan.get("creates", [])
        if item.get("email")
    }
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = session.execute(
            select(IdentityLink.external_id, User.email, User.id)
            .join(User, User.id == IdentityLink.user_id)
            .where(
                IdentityLink.connector_id == run.connector_id,
                IdentityLink.external_id.in_(wanted[start : start + LOOKUP_CHUNK]),
            )
        )
        for external_id, email, user_id in rows:
            found[external_id] = Person(email, str(user_id))
    return found
