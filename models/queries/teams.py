"""Read models for teams and their members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.entities import Team, TeamMembership, User
from models.text import visible


def list_teams(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """All teams for an admin; the teams one belongs to for everyone else."""
    query = select(Team).where(Team.organisation_id == viewer.organisation_id)
    if not viewer.is_admin:
        query = query.join(TeamMembership, TeamMembership.team_id == Team.id).where(
            TeamMembership.user_id == viewer.user_id
        )
    return [team_summary(team) for team in session.scalars(query.order_by(Team.name_key))]


def team_members(session: Session, team: Team) -> list[dict[str, Any]]:
    rows = session.execute(
        select(User, TeamMembership.role)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(TeamMembership.team_id == team.id)
        .order_by(User.email_key)
    )
    return [
        {"user_id": str(user.id), "name": user.name, "email": user.email, "team_role": role.value}
        for user, role in rows
    ]


def team_summary(team: Team) -> dict[str, Any]:
    """A team as the API shows it; `name_shown` is its name with any invisible or
    direction-changing character marked (models.text.visible), as the console shows it: a
    name saved before such names were refused does not pass for another team's."""
    return {
        "id": str(team.id),
        "name": team.name,
        "name_shown": visible(team.name),
        "created_at": team.created_at.isoformat(),
    }
