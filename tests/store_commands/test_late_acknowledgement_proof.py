"""A late store acknowledgement with the gateway down: the revocation still ends with its proof.

The store failed once, so its acknowledgement is late and plans a second gateway invalidation
(ODOCK_REINVALIDATE_AFTER); the gateway was down for the store cut-off's own call and came back
as a node that answers 200 and keeps serving its cache. The second invalidation's call (the
reaper's gateway-only caller) then came before the store cut-off's next attempt, and closed
that cut-off too: the command was never marked invalidated, its proof never opened, and the
gateway never asked whether it still accepted the key, which went on working with no finding
and no alert.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.entities import KeyCutoff
from models.enums import FindingState, Severity
from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, command_of, finding_of
from tests.support.reaper import wait_reaping
from tests.support.wait import wait_until

STORE, AGAIN = "key.revoke", "key.reinvalidate"


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    # A failed call waits 4 s, then 8 s: the second invalidation is due (4 s after the store
    # cut-off's failed gateway call) well before the store cut-off's next attempt (8 s).
    return bridged(
        settings,
        odock,
        celery_queue=f"{settings.celery_queue}-late-ack",
        cutoff_retry_base=4.0,
        cutoff_retry_max=8.0,
    )


def due(sessions, key_id) -> set[str]:
    """The commands of the key's cut-offs (not its proof) due now and held by no caller."""
    now = utcnow()
    with sessions() as fresh:
        rows = fresh.scalars(
            select(KeyCutoff).where(KeyCutoff.key_id == key_id, KeyCutoff.acknowledged_at.is_(None))
        ).all()
    return {
        row.command
        for row in rows
        if row.next_attempt_at <= now and (row.leased_until is None or row.leased_until < now)
    }


def test_a_late_acknowledgement_with_the_gateway_down_still_ends_with_the_proof(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.store_faults.fail = True
    odock.gateway_faults.unavailable = True
    odock.gateway_faults.ignore_invalidations = True  # once up, it answers 200 and forgets nothing

    deactivate(bridged_client, holder)
    wait_until(lambda: odock.commands_seen.for_key(holder.key_id), what="the store's 500")
    odock.store_faults.fail = False
    wait_reaping(
        lambda: odock.invalidations.times_for(str(holder.key_id)),
        what="the late acknowledgement, then the gateway called (503)",
    )
    wait_until(
        lambda: due(bridged_sessions, holder.key_id) == {AGAIN},
        what="the second invalidation due, the store cut-off still waiting",
    )
    odock.gateway_faults.unavailable = False

    urgent = wait_reaping(
        lambda: finding_of(bridged_sessions, holder.key_id, "key_still_accepted"),
        what="the proof, and the urgent finding it opens",
    )
    assert urgent.severity is Severity.URGENT and urgent.state is FindingState.OPEN
    assert urgent.detail["proof"]["accepted"] is True
    command = command_of(bridged_sessions, holder.key_id)
    assert command.attempts >= 2 and command.gateway_invalidated_at is not None
    assert odock.invalidations.status_times_for(str(holder.key_id))
    assert odock.call(holder.key_value) == ACCEPTED  # the broken node, now reported
