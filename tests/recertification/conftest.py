"""A small organisation whose keys fall in and out of a recertification campaign's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from models.actions import recertification
from models.base import utcnow
from models.entities import Organisation, Team, TeamMembership, User, VirtualApiKey
from models.enums import Role, TeamRole

# Re-exported: the campaign test reuses the review tests' loopback gateway and hook server.
from tests.reviews.conftest import gateway, hook_server, hooks  # noqa: F401
from tests.support import factories as f

LONG_AGO = timedelta(days=200)


@dataclass
class Keys:
    org: Organisation
    admin: User
    owner: User
    mover: User
    manager: User
    idle: User
    team: Team
    spend: VirtualApiKey  # used in the last 30 days
    spend_too: VirtualApiKey  # used in the last 30 days, the owner will keep it
    unused: VirtualApiKey  # older than 90 days, never used
    moved: VirtualApiKey  # its owner joined a team since the last campaign
    quiet: VirtualApiKey  # new, unused, owner unmoved: out of scope

    def in_scope(self) -> set:
        return {k.id for k in (self.spend, self.spend_too, self.unused, self.moved)}


def build_keys(session: Session) -> Keys:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    owner = f.make_user(session, org, email=f"owner-{org.slug}@example.com")
    mover = f.make_user(session, org, email=f"mover-{org.slug}@example.com")
    manager = f.make_user(session, org, role=Role.MANAGER, email=f"mgr-{org.slug}@example.com")
    idle = f.make_user(session, org, email=f"idle-{org.slug}@example.com")
    idle.created_at = utcnow() - LONG_AGO
    team = f.make_team(session, org, "Platform")
    spend = f.make_key(session, org, owner=owner)
    spend_too = f.make_key(session, org, owner=owner)
    unused = f.make_key(session, org, owner=owner)
    unused.created_at = utcnow() - LONG_AGO
    quiet = f.make_key(session, org, owner=owner)
    f.add_member(session, team, manager, TeamRole.MANAGER)
    f.add_member(session, team, mover)
    session.execute(  # only the mover's membership is recent
        update(TeamMembership)
        .where(TeamMembership.user_id == manager.id)
        .values(created_at=utcnow() - LONG_AGO)
    )
    moved = f.make_key(session, org, owner=mover)
    moved.owner_team_id = team.id
    for key in (spend, spend_too):
        f.make_usage(session, org, owner, key, cost="2.00")
    session.flush()
    return Keys(
        org, admin, owner, mover, manager, idle, team, spend, spend_too, unused, moved, quiet
    )


def configure(session: Session, org: Organisation, **changes) -> None:
    recertification.configure(
        session,
        organisation_id=org.id,
        actor=f.SETUP,
        changes={"spend_days": 30, "unused_days": 90, "moved_people": True, **changes},
    )


@pytest.fixture
def keys(session: Session) -> Keys:
    built = build_keys(session)
    configure(session, built.org)
    session.commit()
    return built
