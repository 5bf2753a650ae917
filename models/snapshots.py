"""Plain-dict views of entities, for audit before/after and for API answers."""

from __future__ import annotations

from typing import Any

from models.entities import Team, TeamMembership, User, VirtualApiKey


def user_snapshot(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "status": user.status.value,
    }


def team_snapshot(team: Team) -> dict[str, Any]:
    return {"id": str(team.id), "name": team.name}


def membership_snapshot(membership: TeamMembership) -> dict[str, Any]:
    return {
        "team_id": str(membership.team_id),
        "user_id": str(membership.user_id),
        "role": membership.role.value,
    }


def key_snapshot(key: VirtualApiKey) -> dict[str, Any]:
    return {"id": str(key.id), "name": key.name, "revoked": key.revoked}
