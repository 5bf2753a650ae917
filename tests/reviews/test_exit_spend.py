"""Spend accounting at exit: budgets frozen by the revocation, spend and unspent in the review."""

from decimal import Decimal

from sqlalchemy import select

from models.actions import lifecycle
from models.base import utcnow
from models.entities import AuditEvent, Budget
from models.enums import OwnerType
from tests.reviews.conftest import build_leaver, revoke_and_review
from tests.support import factories as f


def _team_budget(session, org, team, amount: str) -> Budget:
    budget = Budget(
        organisation_id=org.id,
        owner_type=OwnerType.TEAM,
        owner_id=team.id,
        name="team monthly",
        amount=Decimal(amount),
    )
    session.add(budget)
    return budget


def test_revocation_freezes_budgets_and_the_review_records_what_left(session):
    world = build_leaver(session)
    (budget,) = session.scalars(select(Budget).where(Budget.owner_id == world.person.id)).all()
    team_budget = _team_budget(session, world.org, world.team_a, "1000")
    spent = f.make_usage(session, world.org, world.person, world.key_a, cost="30.25")
    spent.team_id = world.team_a.id
    colleague = f.make_usage(session, world.org, world.manager_a, cost="9.75")
    colleague.team_id = world.team_a.id
    f.make_usage(session, world.org, world.manager_a, cost="500")  # not the person's, no team
    session.flush()

    review = revoke_and_review(session, world.person)

    session.refresh(budget)
    assert budget.frozen_at is not None and budget.frozen_by_revocation_id == review.revocation_id
    exit = review.context["exit_spend"]
    assert exit["final_spend"] == "30.250000"
    (row,) = exit["budgets"]
    assert row["budget_id"] == str(budget.id) and row["frozen"] is True
    assert (Decimal(row["spent"]), Decimal(row["unspent"])) == (Decimal("30.25"), Decimal("69.75"))
    assert exit["unspent"] == {"USD": "69.750000"}
    team_a = next(t for t in exit["teams"] if t["team_id"] == str(world.team_a.id))
    (against,) = team_a["budgets"]
    assert against["budget_id"] == str(team_budget.id)
    assert Decimal(against["team_spent"]) == Decimal("40")
    assert Decimal(against["person_spent"]) == Decimal("30.25")
    assert Decimal(against["left_with_person"]) == Decimal("69.75")
    assert against["share_of_team_budget"] == "0.0698"
    frozen = session.scalars(select(AuditEvent).where(AuditEvent.action == "budget.frozen")).all()
    assert [e.target_id for e in frozen] == [str(budget.id)]


def test_reactivation_thaws_only_what_the_revocation_froze(session):
    world = build_leaver(session)
    (budget,) = session.scalars(select(Budget).where(Budget.owner_id == world.person.id)).all()
    already = f.make_budget(session, world.org, world.person, amount="5")
    session.flush()
    already.frozen_at = utcnow()  # frozen by someone else before: stays frozen
    session.flush()

    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.flush()
    lifecycle.reactivate(session, user=world.person, actor=f.SETUP)
    session.flush()

    session.refresh(budget)
    session.refresh(already)
    assert budget.frozen_at is None and budget.frozen_by_revocation_id is None
    assert already.frozen_at is not None and already.frozen_by_revocation_id is None
    thawed = session.scalars(select(AuditEvent).where(AuditEvent.action == "budget.thawed")).all()
    assert [e.target_id for e in thawed] == [str(budget.id)]
    assert revocation.undone_at is not None
