"""Where the gate counts a change: PostgreSQL decides in a short transaction of its own, so the
gate row is not held through the change's own work; SQLite, one writer at a time, counts in
the change's transaction."""

from __future__ import annotations

from sqlalchemy import func, select, text

from models.actions import mass_change
from models.actor import Actor
from models.entities import MassChange, User
from models.enums import ChangeKind, ChangeStatus, Source
from tests.support import factories as f

SCIM = Actor(Source.SCIM, "okta")
DEACTIVATE = mass_change.GateRequest(ChangeKind.DEACTIVATE, reason="test")


def counted(sessions) -> int:
    with sessions() as fresh:
        query = select(func.count()).select_from(MassChange)
        return int(fresh.scalar(query.where(MassChange.status == ChangeStatus.APPLIED)) or 0)


def test_a_counted_change_leaves_the_gate_open_to_the_next_before_it_commits(
    session, sessions, engine, gated
):
    first_id = f.make_user(session, gated.org, email="first@gated.test").id
    second_id = f.make_user(session, gated.org, email="second@gated.test").id
    session.commit()

    with sessions() as first:
        assert mass_change.admit(
            first, user=first.get(User, first_id), request=DEACTIVATE, actor=SCIM
        )
        if engine.dialect.name == "postgresql":
            with sessions() as second:
                # Were the gate row still locked by the first, this would fail, not wait.
                second.execute(text("SET LOCAL lock_timeout = '2s'"))
                assert mass_change.admit(
                    second, user=second.get(User, second_id), request=DEACTIVATE, actor=SCIM
                )
                second.commit()
        first.rollback()  # the first change failed after it was counted

    # PostgreSQL: it still counts, which errs towards holding. SQLite: gone with it.
    assert counted(sessions) == (2 if engine.dialect.name == "postgresql" else 0)


def test_a_transaction_holding_the_gate_counts_in_itself(session, sessions, engine, gated):
    """Once a transaction has locked the gate (a drain batch that met the threshold path),
    its later changes count in it: a transaction of their own would wait on it forever."""
    ids = [f.make_user(session, gated.org, email=f"p{n}@gated.test").id for n in range(2)]
    session.commit()

    with sessions() as batch:
        mass_change.settle(batch, organisation_id=gated.org.id, source=Source.SCIM, actor=SCIM)
        for user_id in ids:
            assert mass_change.admit(
                batch, user=batch.get(User, user_id), request=DEACTIVATE, actor=SCIM
            )
        batch.rollback()

    assert counted(sessions) == 0


def test_withdraw_sees_the_mass_changes_its_session_has_not_flushed(session, gated):
    """withdraw reads without flushing the caller's other writes, but never past a mass
    change the session holds unflushed: a new held change is found, a closed one is not."""
    user = f.make_user(session, gated.org, email="unflushed@gated.test")
    session.commit()
    held = held_deactivation(session, user)
    assert mass_change.withdraw(session, user=user, kinds=mass_change.STATUS_KINDS, actor=SCIM)
    assert held.status is ChangeStatus.SUPERSEDED

    again = held_deactivation(session, user)
    session.flush()
    again.status = ChangeStatus.DISCARDED  # closed, not yet flushed
    kinds = mass_change.STATUS_KINDS
    assert mass_change.withdraw(session, user=user, kinds=kinds, actor=SCIM) == 0


def held_deactivation(session, user) -> MassChange:
    """A held SCIM deactivation of `user`, added to the session and not flushed."""
    held = MassChange(
        organisation_id=user.organisation_id,
        source=Source.SCIM,
        user_id=user.id,
        kind=ChangeKind.DEACTIVATE,
        status=ChangeStatus.HELD,
    )
    session.add(held)
    return held
