"""Store commands ride the cut-off machinery (issue 20 with the bridge): a store that hangs
past the deadline raises one `cutoff.deadline_missed` incident, the reaper re-sends the command
until the store answers, and the incident clears with the gateway's acknowledgement."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.entities import AuditEvent, CutoffIncident, OutboxMessage
from tests.ops.test_time_to_kill import samples
from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, cutoff_of
from tests.support.reaper import wait_reaping

DEADLINE = 4.0


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    return bridged(
        settings,
        odock,
        cutoff_deadline=DEADLINE,
        celery_queue=f"{settings.celery_queue}-store-cutoffs",
    )


def audited(sessions, action: str) -> list[AuditEvent]:
    with sessions() as fresh:
        return fresh.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_a_hanging_store_times_out_alarms_once_at_the_deadline_and_the_reaper_finishes_it(
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
    assert odock.call(holder.key_value) == ACCEPTED
    before = samples(bridged_client, "scim")
    odock.store_faults.hang = True  # holds every command past ODOCK_TIMEOUT, applies none

    deactivate(bridged_client, holder)

    [alarm] = wait_reaping(
        lambda: audited(bridged_sessions, "cutoff.deadline_missed"),
        timeout=30,
        what="the deadline alarm",
    )
    assert alarm.after["key_ids"] == [str(holder.key_id)]
    # The deadline runs from the revocation, so on a loaded machine it can pass while the
    # first attempt still hangs: the alarm then has no failure to name yet.
    assert alarm.after["last_error"] is None or "unreachable" in alarm.after["last_error"]
    wait_reaping(
        lambda: _timed_out_twice(bridged_sessions, holder.key_id), what="two timed-out attempts"
    )
    assert odock.store.key(holder.key_id)["revoked"] is False
    assert odock.invalidations.times_for(str(holder.key_id)) == []
    assert odock.call(holder.key_value) == ACCEPTED  # nothing invalidated before the store

    odock.store_faults.heal()

    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, timeout=30, what="rejection")
    wait_reaping(
        lambda: audited(bridged_sessions, "cutoff.deadline_recovered"),
        what="the incident cleared",
    )
    assert len(audited(bridged_sessions, "cutoff.deadline_missed")) == 1
    with bridged_sessions() as fresh:
        assert fresh.scalars(select(CutoffIncident)).one().cleared_at is not None
    command = command_of(bridged_sessions, holder.key_id)
    assert command.acknowledged_at is not None and odock.store.key(holder.key_id)["revoked"]
    invalidated = min(odock.invalidations.times_for(str(holder.key_id)))
    assert invalidated >= command.acknowledged_at.timestamp()
    # the revocation's time to kill is counted though the reaper, not the fast path, ended it
    wait_reaping(lambda: samples(bridged_client, "scim") > before, what="a time-to-kill sample")


def _timed_out_twice(sessions, key_id) -> bool:
    cutoff = cutoff_of(sessions, key_id)
    return cutoff.attempts >= 2 and "unreachable" in (cutoff.last_error or "")


def test_a_proof_the_gateway_cannot_give_is_redriven_by_the_reaper_and_alarmed_at_the_deadline(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """The proof of a revocation is a cut-off too (no Celery retry chain): while the gateway
    cannot say whether it still accepts the key, the reaper asks again with backoff, the admins
    are alarmed at the deadline, and the incident clears with the gateway's answer."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.gateway_faults.status_unavailable = True

    deactivate(bridged_client, holder)

    [alarm] = wait_reaping(
        lambda: audited(bridged_sessions, "cutoff.deadline_missed"),
        timeout=30,
        what="the deadline alarm for the missing proof",
    )
    assert alarm.after["key_ids"] == [str(holder.key_id)]
    assert odock.call(holder.key_value) == REJECTED  # the invalidation itself went through
    assert command_of(bridged_sessions, holder.key_id).gateway_checked_at is None
    asked = len(odock.invalidations.status_times_for(str(holder.key_id)))
    assert asked >= 2  # asked again, not once and forgotten

    odock.gateway_faults.heal()

    wait_reaping(
        lambda: audited(bridged_sessions, "cutoff.deadline_recovered"),
        timeout=30,
        what="the proof, and the incident cleared",
    )
    command = command_of(bridged_sessions, holder.key_id)
    assert command.gateway_checked_at is not None and command.gateway_accepted is False
    assert len(audited(bridged_sessions, "cutoff.deadline_missed")) == 1
    with bridged_sessions() as fresh:
        assert not fresh.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "odock.prove_keys_dead")
        ).all()
