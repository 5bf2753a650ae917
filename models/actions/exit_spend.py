"""Spend accounting at exit: a leaver's user budgets are frozen by their revocation (and thawed
by its undoing; bridged, the freeze and thaw go to Odock's store as commands), and their review
records what they spent over each budget's window and what was left unspent, shown against the
budgets of the teams they belonged to."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from models import audit, key_scope
from models.actor import Actor
from models.base import utcnow
from models.entities import Budget, Revocation, Team, TeamMembership, UsageRecord, VirtualApiKey
from models.enums import OwnerType, StoreCommandType
from models.key_changes import send_budget_change

DEFAULT_WINDOW = "monthly"


def window_start(window: str, at: datetime) -> datetime:
    """The start of the budget window that contains `at` (calendar windows, UTC); an unknown
    window counts as monthly."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {
        "hourly": at.replace(minute=0, second=0, microsecond=0),
        "daily": day,
        "weekly": day - timedelta(days=day.weekday()),
        "monthly": day.replace(day=1),
        "yearly": day.replace(month=1, day=1),
        "annual": day.replace(month=1, day=1),
    }
    return starts.get(window.lower(), starts[DEFAULT_WINDOW])


def _user_budgets(user_id: uuid.UUID) -> ColumnElement[bool]:
    return (Budget.owner_type == OwnerType.USER) & (Budget.owner_id == user_id)


def freeze_budgets(session: Session, *, revocation: Revocation, actor: Actor) -> list[uuid.UUID]:
    """Freeze the person's user budgets that are not frozen yet; the ids frozen, audited."""
    now = utcnow()
    frozen = sorted(
        session.scalars(
            update(Budget)
            .where(_user_budgets(revocation.user_id), Budget.frozen_at.is_(None))
            .values(frozen_at=now, frozen_by_revocation_id=revocation.id, updated_at=now)
            .returning(Budget.id)
            .execution_options(synchronize_session="fetch")
        ).all()
    )
    _audit(session, revocation, frozen, actor, "budget.frozen", frozen=True)
    send_budget_change(
        session,
        organisation_id=revocation.organisation_id,
        budget_ids=frozen,
        command=StoreCommandType.BUDGET_FREEZE,
        reason="the owner's access was revoked",
        revocation_id=revocation.id,
    )
    return frozen


def thaw_budgets(session: Session, *, revocation: Revocation, actor: Actor) -> list[uuid.UUID]:
    """Undo exactly the freezes this revocation made; the ids thawed, audited."""
    thawed = sorted(
        session.scalars(
            update(Budget)
            .where(Budget.frozen_by_revocation_id == revocation.id)
            .values(frozen_at=None, frozen_by_revocation_id=None, updated_at=utcnow())
            .returning(Budget.id)
            .execution_options(synchronize_session="fetch")
        ).all()
    )
    _audit(session, revocation, thawed, actor, "budget.thawed", frozen=False)
    send_budget_change(
        session,
        organisation_id=revocation.organisation_id,
        budget_ids=thawed,
        command=StoreCommandType.BUDGET_THAW,
        reason="the owner's revocation was undone",
        revocation_id=revocation.id,
    )
    return thawed


def _audit(
    session: Session,
    revocation: Revocation,
    budget_ids: list[uuid.UUID],
    actor: Actor,
    action: str,
    *,
    frozen: bool,
) -> None:
    for budget_id in budget_ids:
        audit.record(
            session,
            actor=actor,
            organisation_id=revocation.organisation_id,
            action=action,
            target_type="budget",
            target_id=budget_id,
            before={"frozen": not frozen},
            after={
                "frozen": frozen,
                "revocation_id": str(revocation.id),
                "user_id": str(revocation.user_id),
            },
        )


def account(session: Session, *, revocation: Revocation) -> dict[str, Any]:
    """What the person spent over each of their budgets' windows up to the revocation, what
    was left unspent, and that beside each budget of the teams they belonged to."""
    at = revocation.revoked_at
    budgets = session.scalars(
        select(Budget).where(_user_budgets(revocation.user_id)).order_by(Budget.name, Budget.id)
    ).all()
    rows = [_budget_row(session, revocation, budget, at) for budget in budgets]
    spent_monthly = _spent(session, _by_person(revocation.user_id), window_start("monthly", at), at)
    unspent: dict[str, Decimal] = {}
    for row in rows:
        unspent[row["currency"]] = unspent.get(row["currency"], Decimal(0)) + Decimal(
            row["unspent"]
        )
    return {
        "revoked_at": at.isoformat(),
        "final_spend": str(spent_monthly),
        "final_spend_window": DEFAULT_WINDOW,
        "budgets": rows,
        "unspent": {currency: str(amount) for currency, amount in sorted(unspent.items())},
        "teams": _team_rows(session, revocation, unspent, at),
    }


def _budget_row(
    session: Session, revocation: Revocation, budget: Budget, at: datetime
) -> dict[str, Any]:
    start = window_start(budget.window, at)
    spent = _spent(session, _by_person(revocation.user_id), start, at)
    return {
        "budget_id": str(budget.id),
        "name": budget.name,
        "window": budget.window,
        "window_start": start.isoformat(),
        "amount": str(budget.amount),
        "currency": budget.currency,
        "spent": str(spent),
        "unspent": str(max(budget.amount - spent, Decimal(0))),
        "frozen": budget.frozen_at is not None,
    }


def _team_rows(
    session: Session, revocation: Revocation, unspent: dict[str, Decimal], at: datetime
) -> list[dict[str, Any]]:
    teams = session.scalars(
        select(Team)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == revocation.user_id)
        .order_by(Team.name_key)
    ).all()
    rows = []
    for team in teams:
        budgets = session.scalars(
            select(Budget)
            .where(Budget.owner_type == OwnerType.TEAM, Budget.owner_id == team.id)
            .order_by(Budget.name, Budget.id)
        ).all()
        rows.append(
            {
                "team_id": str(team.id),
                "name": team.name,
                "budgets": [
                    _team_budget_row(session, revocation, team, budget, unspent, at)
                    for budget in budgets
                ],
            }
        )
    return rows


def _team_budget_row(
    session: Session,
    revocation: Revocation,
    team: Team,
    budget: Budget,
    unspent: dict[str, Decimal],
    at: datetime,
) -> dict[str, Any]:
    start = window_start(budget.window, at)
    in_team = UsageRecord.team_id == team.id
    left = unspent.get(budget.currency, Decimal(0))
    return {
        "budget_id": str(budget.id),
        "name": budget.name,
        "window": budget.window,
        "amount": str(budget.amount),
        "currency": budget.currency,
        "team_spent": str(_spent(session, in_team, start, at)),
        "person_spent": str(_spent(session, in_team & _by_person(revocation.user_id), start, at)),
        "left_with_person": str(left),
        "share_of_team_budget": (
            str(round(left / budget.amount, 4)) if budget.amount > 0 else None
        ),
    }


def _by_person(user_id: uuid.UUID) -> ColumnElement[bool]:
    their_keys = select(VirtualApiKey.id).where(key_scope.held_by(user_id))
    return or_(UsageRecord.user_id == user_id, UsageRecord.api_key_id.in_(their_keys))


def _spent(
    session: Session, condition: ColumnElement[bool], start: datetime, end: datetime
) -> Decimal:
    total = session.scalar(
        select(func.coalesce(func.sum(UsageRecord.cost), 0)).where(
            condition, UsageRecord.occurred_at >= start, UsageRecord.occurred_at <= end
        )
    )
    return Decimal(total or 0).quantize(Decimal("0.000001"))
