"""Key commands: one the store answers 404 ends; a bridged revocation's time to kill is
measured once the gateway forgets the key (issue 12)."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import AuditEvent, OutboxMessage, StoreCommand
from tests.ops.test_time_to_kill import samples
from tests.store_commands.conftest import deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, finding_of
from tests.support.odock.store import delete_key
from tests.support.relay import wait_as_beat
from tests.support.wait import wait_until


def test_a_command_the_store_answers_404_ends_audited_and_the_gateway_still_forgets_the_key(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED  # cached by the gateway
    delete_key(odock.store, holder.key_id)  # deleted in Odock; the deletion event is late
    assert odock.call(holder.key_value) == ACCEPTED  # the gateway still serves its cache

    deactivate(bridged_client, holder)

    wait_as_beat(
        lambda: odock.invalidations.times_for(str(holder.key_id)),
        what="the gateway told to forget the key",
    )
    assert odock.call(holder.key_value) == REJECTED
    # one attempt, answered 404, and the command is over: nothing left to retry
    assert [c.status for c in odock.commands_seen.for_key(holder.key_id)] == [404]
    with bridged_sessions() as fresh:
        command = fresh.scalars(
            select(StoreCommand).where(StoreCommand.subject_id == holder.key_id)
        ).one()
        assert command.abandoned_at is not None and command.acknowledged_at is None
        assert command.attempts == 1 and "no such key" in command.last_error
        [ended] = fresh.scalars(
            select(AuditEvent.after).where(AuditEvent.action == "api_key.command_abandoned")
        ).all()
        assert ended["command_id"] == str(command.id)

    def noted():
        found = finding_of(bridged_sessions, holder.key_id)
        return found if found is not None and found.gateway_proof else None

    finding = wait_until(noted, timeout=30, what="the finding updated, and proven dead")
    assert "no such key" in finding.detail["store"] and finding.detail["store_answered_at"]
    assert finding.gateway_proof["accepted"] is False


def test_a_bridged_revocation_is_counted_in_the_time_to_kill_once_the_gateway_forgets(
    bridged_session,
    bridged_sessions,
    bridged_client,
    bridged_worker,
    odock,
    monkeypatch,
    metrics_dir,
):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    before = samples(bridged_client, "scim")

    deactivate(bridged_client, holder)

    with bridged_sessions() as fresh:
        [sent] = fresh.scalars(
            select(OutboxMessage.kwargs).where(OutboxMessage.task == "odock.send_store_commands")
        ).all()
    assert sent["source"] == "scim" and sent["arrived_at"] is not None
    wait_as_beat(lambda: samples(bridged_client, "scim") > before, what="a time-to-kill sample")
    assert odock.invalidations.times_for(str(holder.key_id))
