"""What holds a directory sync's destructive changes: per-connector thresholds and policies.

Three kinds of change take access away: revoking a user, removing a team membership, and
demoting a user's organisation role; two give it back or let it last: reactivating people
the directory cut off, and clearing or postponing the end dates it set, which a lock, flag
or expiry hidden from the bind account would do to every leaver or contractor at once.
Each kind has its own count and percentage threshold; a plan over any of them waits for an
admin (quarantine), as does a plan in which a mapped group came back empty while people are
in its team or hold its role (or while the plan takes people still in the directory out of
that team or role), or a full people read found none of the connector's linked active
people (`emptied`, from the counts the reconciler notes on the plan): those wait whatever
the thresholds say.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan, Revoke
from connectors.name_keys import name_key
from models.entities import DirectoryConnector, IdentityLink, TeamMembership, User
from models.enums import Role, Source
from models.errors import InvalidInput

KINDS = ("revoke", "team_remove", "demote", "reactivate", "end_date_clear")


class Threshold(BaseModel):
    """More than `count` changes, or more than `percent` of those that could change, wait."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=0, le=10_000_000, strict=True)
    percent: int = Field(ge=0, le=100, strict=True)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    revoke: Threshold = Threshold(count=50, percent=10)
    team_remove: Threshold = Threshold(count=100, percent=10)
    demote: Threshold = Threshold(count=10, percent=10)
    # Giving access back to people the directory cut off: a lock or flag the bind account
    # can no longer read (an ACL change) reads as none, and would let every leaver back.
    reactivate: Threshold = Threshold(count=50, percent=10)
    # End dates the directory set, cleared or moved later: an expiry hidden the same way
    # reads as none, and would keep every contractor past their end.
    end_date_clear: Threshold = Threshold(count=50, percent=10)


class SafetyPolicy(BaseModel):
    """A connector's safety settings; every field has a documented, safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Thresholds = Thresholds()
    # a linked entry gone and a new one with the same email: relink the person to the new
    # entry ("relink"), or report the new entry and leave the person to an admin ("report")
    rehire: Literal["relink", "report"] = "relink"


def policy_of(connector: DirectoryConnector) -> SafetyPolicy:
    """The connector's policy (stored values over the defaults)."""
    return SafetyPolicy.model_validate(connector.safety or {})


def merged_policy(current: dict[str, Any], change: Any) -> dict[str, Any]:
    """The policy after a partial change (nested objects merge); InvalidInput names the
    first bad field, and nothing is stored."""
    if not isinstance(change, dict):
        raise InvalidInput("safety must be an object", field="safety")
    base = SafetyPolicy.model_validate(current or {}).model_dump()
    try:
        return SafetyPolicy.model_validate(_deep_merge(base, change)).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidInput(f"safety.{where}: {error['msg']}", field=f"safety.{where}") from None


def _deep_merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def emptied(plan: Plan) -> list[str]:
    """What the read found empty though the connector holds people there, each said as the
    run reports it: taken for an emptied directory (a user filter naming an attribute the
    server lacks, a base DN on an empty OU, a group filter matching nothing), never for
    people who left. A read that withholds removals (incomplete, or entries without their
    stable id, whom no group can name) empties nothing: its own reason is on the run."""
    if plan.deprovision_blocked:
        return []
    found = []
    linked = plan.people_linked
    if linked and not plan.people_seen:
        found.append(
            f"the people search returned nobody, though {linked} people are linked "
            "to this connector"
            if plan.read == 0
            else f"the people search returned none of the {linked} people linked to this "
            f"connector (it read {plan.read} entries)"
        )
    empty_teams = {name_key(t.name) for t in plan.team_counts if t.current and not t.desired}
    empty_roles = {
        r.name for r in plan.role_counts if r.name != "USER" and r.current and not r.desired
    }
    found.extend(
        f"the groups mapped to team {team.name} returned no members, "
        f"though {team.current} people are in it"
        for team in plan.team_counts
        if name_key(team.name) in empty_teams
    )
    found.extend(
        f"the groups mapped to role {role.name} returned no members, "
        f"though {role.current} users hold it"
        for role in plan.role_counts
        if role.name in empty_roles
    )
    found.extend(_emptied_groups(plan, empty_teams, empty_roles))
    return found


def _emptied_groups(plan: Plan, empty_teams: set[str], empty_roles: set[str]) -> list[str]:
    """A group filling a team or role (mapped, or nested in one that is) that came back with
    no members while others still fill it (an ACL that hides one group's `member`): the
    people the plan takes out of that team or role, who are still in the directory, may be
    that group's. Those the plan revokes left; a team or role emptied whole is said above."""
    leaving = {item.external_id for item in (*plan.revokes, *plan.holds)}
    found = []
    for group in plan.empty_groups:
        team = name_key(group.team)
        if group.team and team not in empty_teams:
            removed = sum(
                1
                for item in plan.team_removes
                if name_key(item.team) == team and item.external_id not in leaving
            )
            if removed:
                found.append(
                    f"the group {group.group}, which fills team {group.team}, returned no "
                    f"members, and the plan removes {removed} people still in the directory "
                    "from that team"
                )
        if group.role and group.role not in empty_roles:
            demoted = sum(
                1
                for item in plan.roles
                if item.demotion and item.previous == group.role and item.external_id not in leaving
            )
            if demoted:
                found.append(
                    f"the group {group.group}, which gives role {group.role}, returned no "
                    f"members, and the plan demotes {demoted} users still in the directory "
                    "from that role"
                )
    return found


def held_reason(session: Session, *, connector: DirectoryConnector, plan: Plan) -> str:
    """Why this plan must wait for an admin's approval, or "" when it may run."""
    empty = emptied(plan)
    if empty:
        return "; ".join(empty) + " (treated like an empty directory)"
    demotions = plan.demotions
    # A retired team's memberships go with the team, on an admin's change of the mapping.
    retired = {name_key(item.team) for item in plan.team_retires}
    removals = sum(1 for item in plan.team_removes if name_key(item.team) not in retired)
    changes = {
        "revoke": (len(plan.revokes), "revokes", "users", "linked users"),
        "team_remove": (
            removals,
            "removes",
            "team memberships",
            "directory team memberships",
        ),
        "demote": (demotions, "demotes", "users", "users with a role above USER"),
        "reactivate": (len(plan.reactivates), "reactivates", "users", "linked users"),
        "end_date_clear": (
            plan.end_date_clears,
            "clears or postpones the end dates of",
            "users",
            "linked users",
        ),
    }
    for kind, (n, verb, noun, of_what) in changes.items():
        reason = _over_threshold(session, connector, kind, n, f"the plan {verb}", noun, of_what)
        if reason:
            return reason
    return ""


def leavers_who_cannot_wait(
    session: Session, *, connector: DirectoryConnector, plan: Plan
) -> list[Revoke]:
    """The revocations of a held plan that apply at once: people the directory read as
    disabled or expired. What holds a plan is a sign its read went wrong (a group or the
    people come back empty, a hidden lock undone, many memberships gone) or that many would
    lose access; a leaver the directory positively marked is neither, and waiting for an
    admin would leave their access on. Unless these revocations are many themselves: then
    they wait with the rest (a wrong disabled marker in the mapping reads everyone so)."""
    leavers = [item for item in plan.revokes if item.read_as_ended]
    if not leavers:
        return []
    if _over_threshold(session, connector, "revoke", len(leavers), "", "", ""):
        return []
    return leavers


def _over_threshold(
    session: Session,
    connector: DirectoryConnector,
    kind: str,
    n: int,
    verb: str,
    noun: str,
    of_what: str,
) -> str:
    """Why `n` changes of `kind` are more than the connector's threshold lets run, or ""."""
    if not n:
        return ""
    limit: Threshold = getattr(policy_of(connector).thresholds, kind)
    if n > limit.count:
        return f"{verb} {n} {noun}, more than the threshold of {limit.count}"
    total = _base_count(session, connector, kind)
    if total and n * 100 > limit.percent * total:
        return f"{verb} {n} of {total} {of_what}, more than {limit.percent}%"
    return ""


def _base_count(session: Session, connector: DirectoryConnector, kind: str) -> int:
    """What a percentage is of: linked users (revoke, reactivate, end_date_clear), their
    directory memberships, or the linked users holding a role above USER."""
    linked = select(IdentityLink.user_id).where(
        IdentityLink.connector_id == connector.id, IdentityLink.deleted_at.is_(None)
    )
    if kind in ("revoke", "reactivate", "end_date_clear"):
        query = select(func.count()).select_from(linked.subquery())
    elif kind == "team_remove":
        query = select(func.count()).where(
            TeamMembership.user_id.in_(linked), TeamMembership.source == Source.LDAP
        )
    else:
        query = select(func.count()).where(
            User.id.in_(linked), User.role.in_([Role.MANAGER, Role.ORG_ADMIN])
        )
    return int(session.scalar(query) or 0)
