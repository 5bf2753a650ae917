"""Plain-dict views of entities, for audit before/after and for API answers."""

from __future__ import annotations

import uuid
from typing import Any

from models.entities import Team, TeamMembership, User, VirtualApiKey
from models.enums import TeamRole


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
    return membership_row_snapshot(membership.team_id, membership.user_id, membership.role)


def membership_row_snapshot(
    team_id: uuid.UUID, user_id: uuid.UUID, role: TeamRole
) -> dict[str, Any]:
    """membership_snapshot's, of a row not loaded as an object (a set-based write)."""
    return {"team_id": str(team_id), "user_id": str(user_id), "role": role.value}


def key_snapshot(key: VirtualApiKey) -> dict[str, Any]:
    return {"id": str(key.id), "name": key.name, "revoked": key.revoked}
