"""Building test data through the domain operations (so it is shaped as in production)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from connectors.outbound import UrlPolicy
from models.actions import audit_streams, notification_hooks, organisations, teams, tokens
from models.actions import users as user_actions
from models.actor import Actor
from models.entities import (
    AuditStream,
    Budget,
    NotificationHook,
    Organisation,
    Quota,
    RevocationReview,
    Team,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import (
    HookKind,
    KeyType,
    OwnerType,
    Role,
    Source,
    StreamPreset,
    TeamRole,
    TokenScope,
    UserStatus,
)
from models.signed_links import REVIEW_ACK_PURPOSE, make_token

SETUP = Actor(Source.ADMIN, "test-setup")
LOOPBACK = UrlPolicy(allow_loopback=True)  # the tests' receivers listen on 127.0.0.1
_counter = itertools.count(1)


def make_org(session: Session, name: str | None = None) -> Organisation:
    slug = fresh_slug()
    return organisations.create_organisation(
        session, name=name or f"Org {slug.removeprefix('org-')}", slug=slug, actor=SETUP
    )


def fresh_slug() -> str:
    """An organisation slug no other organisation of this process has had."""
    return f"org-{next(_counter)}"


def make_user(
    session: Session,
    org: Organisation,
    *,
    role: Role = Role.USER,
    email: str | None = None,
    name: str | None = None,
    status: UserStatus = UserStatus.ACTIVE,
) -> User:
    n = next(_counter)
    return user_actions.create_user(
        session,
        organisation=org,
        email=email or f"user{n}@example.com",
        name=name or f"User {n}",
        role=role,
        actor=SETUP,
        status=status,
    )


def make_team(session: Session, org: Organisation, name: str | None = None) -> Team:
    return teams.create_team(
        session, organisation=org, name=name or f"Team {next(_counter)}", actor=SETUP
    )


def add_member(session: Session, team: Team, user: User, role: TeamRole = TeamRole.MEMBER) -> None:
    teams.add_to_team(session, team=team, user=user, role=role, actor=SETUP)


def make_key(
    session: Session,
    org: Organisation,
    *,
    owner: User | None = None,
    team: Team | None = None,
    created_by: User | None = None,
    key_type: KeyType | None = None,
) -> VirtualApiKey:
    n = next(_counter)
    key = VirtualApiKey(
        organisation_id=org.id,
        key_type=key_type
        or (KeyType.USER if owner else KeyType.TEAM if team else KeyType.ORGANISATION),
        owner_user_id=owner.id if owner else None,
        owner_team_id=team.id if team else None,
        name=f"key {n}",
        masked_value=f"sk-...{n:04d}",
        created_by_user_id=(created_by or owner).id if (created_by or owner) else None,
    )
    session.add(key)
    session.flush()
    return key


def make_budget(session: Session, org: Organisation, owner: User, amount: str = "100") -> Budget:
    budget = Budget(
        organisation_id=org.id,
        owner_type=OwnerType.USER,
        owner_id=owner.id,
        name="monthly",
        amount=Decimal(amount),
    )
    session.add(budget)
    return budget


def make_quota(session: Session, org: Organisation, owner: User, limit: int = 1000) -> Quota:
    quota = Quota(
        organisation_id=org.id,
        owner_type=OwnerType.USER,
        owner_id=owner.id,
        name="daily",
        limit=limit,
    )
    session.add(quota)
    return quota


def make_usage(
    session: Session,
    org: Organisation,
    user: User,
    key: VirtualApiKey | None = None,
    cost: str = "0.5",
) -> UsageRecord:
    record = UsageRecord(
        organisation_id=org.id,
        user_id=user.id,
        api_key_id=key.id if key else None,
        model="gpt-test",
        cost=Decimal(cost),
        input_tokens=100,
        output_tokens=50,
    )
    session.add(record)
    return record


def admin_token(session: Session, org: Organisation, user: User) -> str:
    return tokens.create_token(
        session, organisation=org, scope=TokenScope.ADMIN, user=user, actor=SETUP
    ).secret


def scim_token(session: Session, org: Organisation) -> str:
    return tokens.create_token(session, organisation=org, scope=TokenScope.SCIM, actor=SETUP).secret


def review_ack_token(secret_key: str, review: RevocationReview, actor: str) -> str:
    """The acknowledgement link's token for this review, as its notification carries it."""
    return make_token(
        secret_key,
        purpose=REVIEW_ACK_PURPOSE,
        subject=str(review.id),
        actor=actor,
        lifetime=timedelta(hours=1),
    )


def make_hook(
    session: Session,
    organisation_id: uuid.UUID,
    target: str,
    *,
    secret_key: str,
    name: str = "hook",
    kind: HookKind = HookKind.WEBHOOK,
    events: list[str] | None = None,
    actor: Actor = SETUP,
) -> tuple[NotificationHook, str | None]:
    """A notification hook sending to `target` (a loopback receiver) and its signing secret."""
    return notification_hooks.create_hook(
        session,
        organisation_id=organisation_id,
        name=name,
        kind=kind,
        target=target,
        events=events,
        url_policy=LOOPBACK,
        secret_key=secret_key,
        actor=actor,
    )


def make_stream(
    session: Session,
    organisation_id: uuid.UUID,
    target: str,
    *,
    secret_key: str,
    name: str = "siem",
    preset: StreamPreset = StreamPreset.GENERIC,
    splunk_token: str | None = None,
    batch_size: int = 100,
    from_beginning: bool = True,
    actor: Actor = SETUP,
) -> tuple[AuditStream, str]:
    """An audit log stream sending to `target` (a loopback receiver) and its signing secret."""
    return audit_streams.create_stream(
        session,
        organisation_id=organisation_id,
        name=name,
        preset=preset,
        target=target,
        splunk_token=splunk_token,
        batch_size=batch_size,
        from_beginning=from_beginning,
        url_policy=LOOPBACK,
        secret_key=secret_key,
        actor=actor,
    )
