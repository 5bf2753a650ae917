"""A demo organisation with a little of everything, to try the admin API on a fresh install."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from models.actions import organisations, teams, tokens
from models.actions import users as user_actions
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    Budget,
    Organisation,
    Quota,
    Team,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import KeyType, OwnerType, Role, TeamRole, TokenScope, UserStatus

DEMO_TEAMS = ("Platform", "Research", "Support")
# (local part, name, role, status, {team: team role})
DEMO_PEOPLE: tuple[tuple[str, str, Role, UserStatus, dict[str, TeamRole]], ...] = (
    ("ada", "Ada Admin", Role.ORG_ADMIN, UserStatus.ACTIVE, {}),
    (
        "max",
        "Max Manager",
        Role.MANAGER,
        UserStatus.ACTIVE,
        {"Platform": TeamRole.MANAGER, "Research": TeamRole.MEMBER},
    ),
    (
        "uma",
        "Uma User",
        Role.USER,
        UserStatus.ACTIVE,
        {"Platform": TeamRole.MEMBER, "Research": TeamRole.MEMBER},
    ),
    ("sam", "Sam Support", Role.USER, UserStatus.ACTIVE, {"Support": TeamRole.MEMBER}),
    ("pat", "Pat Pending", Role.USER, UserStatus.PENDING, {}),
)
MODELS = ("gpt-4o-mini", "claude-3-haiku", "llama-3-70b")


@dataclass(frozen=True)
class DemoData:
    organisation: Organisation
    admin: User
    featured: User
    people: dict[str, User]
    admin_token: str


def seed_demo(session: Session, *, name: str, slug: str, domain: str, actor: Actor) -> DemoData:
    """Create the demo organisation: teams, one person per role, keys, budgets, usage."""
    organisation = organisations.create_organisation(session, name=name, slug=slug, actor=actor)
    by_team = {
        team: teams.create_team(session, organisation=organisation, name=team, actor=actor)
        for team in DEMO_TEAMS
    }
    people: dict[str, User] = {}
    for local, full_name, role, status, memberships in DEMO_PEOPLE:
        person = user_actions.create_user(
            session,
            organisation=organisation,
            email=f"{local}@{domain}",
            name=full_name,
            role=role,
            status=status,
            actor=actor,
        )
        for team, team_role in memberships.items():
            teams.add_to_team(session, team=by_team[team], user=person, role=team_role, actor=actor)
        people[local] = person
    admin, featured = people["ada"], people["uma"]
    _governance(session, organisation, featured, by_team["Platform"], created_by=people["max"])
    issued = tokens.create_token(
        session,
        organisation=organisation,
        scope=TokenScope.ADMIN,
        user=admin,
        name="demo",
        actor=actor,
    )
    return DemoData(organisation, admin, featured, people, issued.secret)


def _governance(
    session: Session, organisation: Organisation, person: User, team: Team, *, created_by: User
) -> None:
    """Keys, budgets, quotas and a month of usage, as Odock's gateway would have written."""
    now = utcnow()
    keys = [
        _key(organisation, KeyType.USER, "laptop", "sk-...a1b2", owner_user_id=person.id),
        _key(
            organisation,
            KeyType.USER,
            "notebook experiments",
            "sk-...c3d4",
            owner_user_id=person.id,
            expires_at=now + timedelta(days=30),
        ),
        _key(organisation, KeyType.TEAM, "platform ci", "sk-...e5f6", owner_team_id=team.id),
        _key(organisation, KeyType.ORGANISATION, "org fallback", "sk-...g7h8"),
    ]
    for key in keys:
        key.created_by_user_id = created_by.id
    session.add_all(keys)
    session.flush()
    session.add_all(
        [
            Budget(
                organisation_id=organisation.id,
                owner_type=OwnerType.USER,
                owner_id=person.id,
                name="personal monthly",
                amount=Decimal("50"),
            ),
            Budget(
                organisation_id=organisation.id,
                owner_type=OwnerType.TEAM,
                owner_id=team.id,
                name="platform monthly",
                amount=Decimal("500"),
            ),
            Quota(
                organisation_id=organisation.id,
                owner_type=OwnerType.USER,
                owner_id=person.id,
                name="daily requests",
                metric="requests",
                limit=2000,
            ),
            Quota(
                organisation_id=organisation.id,
                owner_type=OwnerType.APIKEY,
                owner_id=keys[0].id,
                name="laptop tokens",
                metric="tokens",
                limit=1_000_000,
                window="daily",
            ),
        ]
    )
    session.add_all(
        UsageRecord(
            organisation_id=organisation.id,
            api_key_id=keys[day % 2].id,
            user_id=person.id,
            team_id=team.id,
            occurred_at=now - timedelta(days=day, hours=day % 5),
            model=MODELS[day % len(MODELS)],
            cost=Decimal("0.0125") * (day % 4 + 1),
            input_tokens=1200 + 37 * day,
            output_tokens=300 + 11 * day,
        )
        for day in range(12)
    )
    session.flush()


def _key(
    organisation: Organisation, key_type: KeyType, name: str, masked: str, **owner: object
) -> VirtualApiKey:
    return VirtualApiKey(
        organisation_id=organisation.id, key_type=key_type, name=name, masked_value=masked, **owner
    )
