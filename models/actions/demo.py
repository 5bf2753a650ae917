"""A demo organisation with a little of everything, to try the admin API on a fresh install."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from models.actions import odock_objects, odock_usage, organisations, teams, tokens
from models.actions import users as user_actions
from models.actions.odock_objects import BudgetIn, KeyIn, QuotaIn
from models.actions.odock_usage import UsageIn
from models.actor import Actor
from models.base import new_id, utcnow
from models.entities import Organisation, Team, User
from models.enums import KeyType, OwnerType, Role, Source, TeamRole, TokenScope, UserStatus

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


DEMO_ODOCK = Actor(Source.ODOCK, "odock demo")


def _governance(
    session: Session, organisation: Organisation, person: User, team: Team, *, created_by: User
) -> None:
    """Keys, budgets, quotas and a month of usage, sent the way Odock's management plane sends
    them (the domain operations behind /odock/v1), so the demo shows the bridge at work."""
    now = utcnow()
    org_id = organisation.id
    keys = [
        KeyIn(
            type=KeyType.USER,
            name="laptop",
            masked_value="sk-...a1b2",
            owner_user_id=person.id,
            version=1,
        ),
        KeyIn(
            type=KeyType.USER,
            name="notebook experiments",
            masked_value="sk-...c3d4",
            owner_user_id=person.id,
            expires_at=now + timedelta(days=30),
            version=1,
        ),
        KeyIn(
            type=KeyType.TEAM,
            name="platform ci",
            masked_value="sk-...e5f6",
            owner_team_id=team.id,
            version=1,
        ),
        KeyIn(type=KeyType.ORGANISATION, name="org fallback", masked_value="sk-...g7h8", version=1),
    ]
    key_ids = [new_id() for _ in keys]
    for key_id, key in zip(key_ids, keys, strict=True):
        key = key.model_copy(update={"created_by_user_id": created_by.id})
        odock_objects.upsert_key(
            session, organisation_id=org_id, key_id=key_id, key=key, actor=DEMO_ODOCK
        )
    budgets = [
        BudgetIn(
            owner_type=OwnerType.USER,
            owner_id=person.id,
            name="personal monthly",
            amount=Decimal("50"),
            version=1,
        ),
        BudgetIn(
            owner_type=OwnerType.TEAM,
            owner_id=team.id,
            name="platform monthly",
            amount=Decimal("500"),
            version=1,
        ),
    ]
    for budget in budgets:
        odock_objects.upsert_budget(
            session, organisation_id=org_id, budget_id=new_id(), budget=budget, actor=DEMO_ODOCK
        )
    quotas = [
        QuotaIn(
            owner_type=OwnerType.USER,
            owner_id=person.id,
            name="daily requests",
            metric="requests",
            limit=2000,
            version=1,
        ),
        QuotaIn(
            owner_type=OwnerType.APIKEY,
            owner_id=key_ids[0],
            name="laptop tokens",
            metric="tokens",
            limit=1_000_000,
            window="daily",
            version=1,
        ),
    ]
    for quota in quotas:
        odock_objects.upsert_quota(
            session, organisation_id=org_id, quota_id=new_id(), quota=quota, actor=DEMO_ODOCK
        )
    usage = [
        UsageIn(
            id=f"demo-{day}",
            api_key_id=key_ids[day % 2],
            user_id=person.id,
            team_id=team.id,
            occurred_at=now - timedelta(days=day, hours=day % 5),
            model=MODELS[day % len(MODELS)],
            cost=Decimal("0.0125") * (day % 4 + 1),
            input_tokens=1200 + 37 * day,
            output_tokens=300 + 11 * day,
        )
        for day in range(12)
    ]
    odock_usage.ingest_usage(session, organisation_id=org_id, records=usage, actor=DEMO_ODOCK)
    session.flush()
