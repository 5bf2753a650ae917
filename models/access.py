"""Who may see and change what, following the product's organisation roles.

Organisation Admins: everything in their organisation. Managers: the people and resources of
the teams in which they hold the team role MANAGER. Users: only themselves. Nothing crosses
organisations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, select, true
from sqlalchemy.orm import Session

from models.entities import Organisation, Team, TeamMembership, User
from models.entities.user import email_key
from models.enums import Role, TeamRole, UserStatus
from models.errors import Forbidden, NotFound

ADMIN_ROLES = frozenset({Role.ORG_ADMIN, Role.SUPER_ADMIN})


@dataclass(frozen=True)
class Viewer:
    """On whose behalf a request acts: a signed-in user, or the operator at the CLI."""

    organisation_id: uuid.UUID
    role: Role
    user_id: uuid.UUID | None
    name: str

    @classmethod
    def for_user(cls, user: User) -> Viewer:
        return cls(user.organisation_id, user.role, user.id, user.email)

    @classmethod
    def operator(cls, organisation_id: uuid.UUID) -> Viewer:
        """The CLI runs with full authority over one organisation."""
        return cls(organisation_id, Role.ORG_ADMIN, None, "cli")

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER

    def organisation(self, session: Session) -> Organisation:
        return session.get_one(Organisation, self.organisation_id)


def managed_team_ids(session: Session, viewer: Viewer) -> set[uuid.UUID]:
    """Teams this viewer manages (an admin manages all of the organisation's teams)."""
    if viewer.is_admin:
        query = select(Team.id).where(Team.organisation_id == viewer.organisation_id)
    elif viewer.is_manager:
        query = select(TeamMembership.team_id).where(
            TeamMembership.user_id == viewer.user_id, TeamMembership.role == TeamRole.MANAGER
        )
    else:
        return set()
    return set(session.scalars(query))


def visible_users(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause on User that keeps only the users this viewer may see."""
    in_org = User.organisation_id == viewer.organisation_id
    if viewer.is_admin:
        return in_org & true()
    if not viewer.is_manager:
        return in_org & (User.id == viewer.user_id)
    mine = TeamMembership.__table__.alias("mine")
    theirs = TeamMembership.__table__.alias("theirs")
    shares_managed_team = exists(
        select(1)
        .select_from(theirs.join(mine, mine.c.team_id == theirs.c.team_id))
        .where(
            theirs.c.user_id == User.id,
            mine.c.user_id == viewer.user_id,
            mine.c.role == TeamRole.MANAGER.value,
        )
    )
    return in_org & ((User.id == viewer.user_id) | shares_managed_team)


def require_admin(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("this action needs the Organisation Admin role")


def require_can_view_user(session: Session, viewer: Viewer, user_id: uuid.UUID) -> User:
    """The user, if visible; otherwise not found (so ids of hidden people leak nothing)."""
    user = session.scalar(select(User).where(User.id == user_id, visible_users(viewer)))
    if user is None:
        raise NotFound("user not found")
    return user


def require_can_view_team(session: Session, viewer: Viewer, team: Team) -> None:
    _own_membership_if_visible(session, viewer, team)


def require_can_manage_team(session: Session, viewer: Viewer, team: Team) -> None:
    """Decided on the team the caller read and the viewer's own membership of it, read once:
    a second read (of the organisation's teams, or of the membership again) could find the
    team deleted by a request that committed in between and refuse an admin or its manager
    (a 403 no serial order gives); the deletion then comes first where the change takes its
    locks, as a 404 (models.membership_locks)."""
    own = _own_membership_if_visible(session, viewer, team)
    if viewer.is_admin:
        return
    if not viewer.is_manager or own is None or own.role is not TeamRole.MANAGER:
        raise Forbidden("only an Organisation Admin or a manager of this team can change it")


def _own_membership_if_visible(
    session: Session, viewer: Viewer, team: Team
) -> TeamMembership | None:
    """The viewer's membership of the team (None for an admin, who sees all the organisation's
    teams); NotFound when the viewer may not see the team."""
    if team.organisation_id != viewer.organisation_id:
        raise NotFound("team not found")
    if viewer.is_admin:
        return None
    own = session.get(TeamMembership, (team.id, viewer.user_id))
    if own is None:
        raise NotFound("team not found")
    return own


def require_can_handle_team_role(viewer: Viewer, role: TeamRole) -> None:
    """Managers add and remove members; only admins add or remove team managers."""
    if role is TeamRole.MANAGER and not viewer.is_admin:
        raise Forbidden("only an Organisation Admin can add or remove a team manager")


def require_can_change_membership(
    session: Session, viewer: Viewer, team: Team, user: User, new_role: TeamRole | None
) -> None:
    """Managers add, remove and re-role plain members; who manages a team (making someone a
    manager, demoting or removing one) is for Organisation Admins only. `new_role` None is a
    removal. SCIM and LDAP group mappings are admin-configured and do not come through here."""
    require_can_manage_team(session, viewer, team)
    current = session.get(TeamMembership, (team.id, user.id))
    if current is not None and current.role is TeamRole.MANAGER and not viewer.is_admin:
        raise Forbidden("only an Organisation Admin can demote or remove a team manager")
    if new_role is not None:
        require_can_handle_team_role(viewer, new_role)
    if current is None and new_role is not None:
        require_manager_may_add(session, viewer, user)


def require_manager_may_add(session: Session, viewer: Viewer, user: User) -> None:
    """A manager adds to a team only a person they can already see (a member of a team they
    manage), who is not PENDING and not an Organisation Admin: adding someone shows the manager
    that person's keys, usage and budgets, so it must show nothing new. Everyone else joins
    through an admin (the API, an invitation, SCIM or LDAP group mappings)."""
    if viewer.is_admin:
        return
    if user.id != viewer.user_id:
        require_can_view_user(session, viewer, user.id)  # someone unseen is not found
    if user.role in ADMIN_ROLES:
        raise Forbidden("only an Organisation Admin can add an Organisation Admin to a team")
    # A REVOKED person is refused by the team operation itself, for a manager as for an admin
    # (teams.add_to_team: 409, audited); a PENDING one is not the manager's to enrol.
    if user.status is UserStatus.PENDING:
        raise Forbidden("a manager can add only ACTIVE people to a team")


def is_leaver(session: Session, organisation_id: uuid.UUID, email: str) -> bool:
    """Whether this address is a person of the organisation who is no longer ACTIVE (a leaver
    gets no one-click links, and the links they were sent stop working for them)."""
    status = session.scalar(
        select(User.status).where(
            User.organisation_id == organisation_id, User.email_key == email_key(email)
        )
    )
    return status is not None and status is not UserStatus.ACTIVE


def require_not_leaver(session: Session, organisation_id: uuid.UUID, email: str) -> None:
    if is_leaver(session, organisation_id, email):
        raise Forbidden(
            "your access has been revoked, so this link no longer works for you; nothing was "
            "changed"
        )


def require_not_self(viewer: Viewer, user: User, *, changes_access: bool) -> None:
    """An admin cannot revoke, demote or otherwise change their own access (no lock-out)."""
    if changes_access and user.id == viewer.user_id:
        raise Forbidden("you cannot change your own role or status; ask another admin")
