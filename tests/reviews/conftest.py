"""Shared arrangements for the review and notification tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import reviews
from models.actions import users as user_actions
from models.actor import Actor
from models.entities import Organisation, RevocationReview, Team, User, VirtualApiKey
from models.enums import Role, Source, TeamRole
from tests.support import factories as f

REVIEWER = Actor(Source.SYSTEM, "reviews-test")


@dataclass
class Leaver:
    org: Organisation
    admin: User
    person: User
    manager_a: User
    team_a: Team
    team_b: Team
    key_a: VirtualApiKey
    key_b: VirtualApiKey
    team_key: VirtualApiKey
    other_key: VirtualApiKey


def build_leaver(session: Session) -> Leaver:
    """A person who owns keys in two teams, created a team key, and is team B's only manager."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    person = f.make_user(session, org, email=f"leaver-{org.slug}@example.com")
    manager_a = f.make_user(session, org, role=Role.MANAGER, email=f"mgr-{org.slug}@example.com")
    bystander = f.make_user(session, org)
    team_a = f.make_team(session, org, "Team A")
    team_b = f.make_team(session, org, "Team B")
    f.add_member(session, team_a, person)
    f.add_member(session, team_a, manager_a, TeamRole.MANAGER)
    f.add_member(session, team_b, person, TeamRole.MANAGER)
    key_a = f.make_key(session, org, owner=person)
    key_a.owner_team_id = team_a.id
    key_b = f.make_key(session, org, owner=person)
    key_b.owner_team_id = team_b.id
    team_key = f.make_key(session, org, team=team_a, created_by=person)
    other_key = f.make_key(session, org, owner=bystander)
    f.make_budget(session, org, person)
    f.make_quota(session, org, person)
    session.flush()
    return Leaver(org, admin, person, manager_a, team_a, team_b, key_a, key_b, team_key, other_key)


def revoke_and_review(session: Session, person: User) -> RevocationReview:
    revocation = user_actions.revoke_user(session, user=person, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)
    assert review is not None
    return review


def findings_by_kind(review: RevocationReview) -> dict[str, list]:
    result: dict[str, list] = {}
    for finding in review.findings:
        result.setdefault(finding.kind, []).append(finding)
    return result


@pytest.fixture
def leaver(session: Session) -> Leaver:
    built = build_leaver(session)
    session.commit()
    return built


def outbox_tasks(session: Session) -> list[tuple[str, dict]]:
    from models.entities import OutboxMessage

    return [
        (m.task, m.kwargs)
        for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    ]
