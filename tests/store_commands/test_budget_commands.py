"""A revocation freezes the person's user budgets and reactivation thaws them; bridged, both go
to Odock's store as commands on the cut-off machinery, like the key commands (issue 20 with
the bridge of issue 12): sent until acknowledged, re-sent by the reaper, no gateway call."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.entities import AuditEvent, KeyCutoff, StoreCommand
from tests.store_commands.conftest import KeyHolder, deactivate, provision_key_holder, reactivate
from tests.support.odock import OdockStandIn
from tests.support.odock.store import budgets
from tests.support.reaper import wait_reaping
from tests.support.relay import wait_as_beat
from tests.support.wait import wait_until

BUDGET = {"owner_type": "USER", "name": "monthly", "amount": "100", "window": "monthly"}


def budget_in_both(client, odock: OdockStandIn, holder: KeyHolder) -> uuid.UUID:
    """A user budget of the holder made in the stand-in and pushed to odock-sync."""
    body = {**BUDGET, "owner_id": str(holder.user_id)}
    budget_id = odock.store.put_owned(budgets, holder.org.id, body)
    pushed = client.put(
        f"/odock/v1/budgets/{budget_id}",
        json={**body, "version": 1},
        headers={"Authorization": f"Bearer {holder.odock_token}"},
    )
    assert pushed.status_code == 200, pushed.get_json()
    return budget_id


def commands_for(sessions, budget_id):
    with sessions() as fresh:
        return fresh.scalars(
            select(StoreCommand)
            .where(StoreCommand.subject_id == budget_id)
            .order_by(StoreCommand.issued_at)
        ).all()


def cutoffs_done(sessions, budget_id) -> bool:
    with sessions() as fresh:
        pending = fresh.scalars(
            select(KeyCutoff.id).where(
                KeyCutoff.key_id == budget_id, KeyCutoff.acknowledged_at.is_(None)
            )
        ).all()
    return pending == []


def audited(sessions, budget_id) -> list[str]:
    with sessions() as fresh:
        return fresh.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_id == str(budget_id))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        ).all()


def test_a_revocation_freezes_the_budget_in_the_store_and_reactivation_thaws_it_through_faults(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    budget_id = budget_in_both(bridged_client, odock, holder)

    deactivate(bridged_client, holder)

    wait_as_beat(lambda: odock.store.budget(budget_id)["frozen"], what="frozen")
    wait_until(lambda: cutoffs_done(bridged_sessions, budget_id), what="cut-off done")
    [freeze] = commands_for(bridged_sessions, budget_id)
    assert freeze.command_type == "budget.freeze" and freeze.acknowledged_at is not None
    assert odock.store.applied_at(str(freeze.id)) is not None
    assert odock.invalidations.times_for(str(budget_id)) == []  # nothing for the gateway
    assert audited(bridged_sessions, budget_id)[1:] == [
        "budget.frozen",
        "budget.command_acknowledged",
    ]

    odock.store_faults.fail = True
    reactivate(bridged_session, bridged_client, holder)

    def thaws_refused():
        seen = odock.commands_seen.for_key(budget_id)
        return len([c for c in seen if c.type == "budget.thaw" and c.status == 500]) >= 2

    wait_reaping(thaws_refused, timeout=30, what="the thaw re-sent to a failing store")
    assert odock.store.budget(budget_id)["frozen"] is True

    odock.store_faults.heal()

    wait_reaping(lambda: not odock.store.budget(budget_id)["frozen"], timeout=30, what="thawed")
    wait_until(lambda: cutoffs_done(bridged_sessions, budget_id), what="cut-off done")
    freeze, thaw = commands_for(bridged_sessions, budget_id)
    assert thaw.command_type == "budget.thaw" and thaw.acknowledged_at is not None
    assert thaw.attempts >= 3
    assert audited(bridged_sessions, budget_id)[-2:] == [
        "budget.thawed",
        "budget.command_acknowledged",
    ]
