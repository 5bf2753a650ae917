"""A worker killed with SIGKILL while the store holds its command: the cut-off's lease runs
out and the reaper, in another worker, sends the command again and finishes the revocation."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import select

from models.entities import KeyCutoff, StoreCommand
from tests.store_commands.conftest import bridged, deactivate, provision_key_holder, reactivate
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, cutoff_of
from tests.support.reaper import wait_reaping
from tests.support.wait import wait_until
from tests.support.worker import start_worker


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    # The dead caller's lease (ODOCK_SEND_BUDGET + ODOCK_TIMEOUT + GATEWAY_TIMEOUT + 2 s) runs
    # out in 6 s instead of 10: the reaper is waited for that long.
    return bridged(
        settings, odock, celery_queue=f"{settings.celery_queue}-killed", odock_send_budget=1.0
    )


@pytest.fixture
def publishing(settings, bridged_settings):
    """This process publishes to the bridged queue meanwhile."""
    from worker.celery_app import configure_celery

    configure_celery(bridged_settings)
    yield
    configure_celery(settings)


def test_a_worker_killed_mid_command_leaves_it_to_the_reaper_which_finishes_it(
    bridged_session, bridged_sessions, bridged_client, bridged_settings, odock, tmp_path, publishing
):
    first = start_worker(bridged_settings, log_dir=tmp_path)
    try:
        holder = provision_key_holder(bridged_session, bridged_client, odock)
        assert odock.call(holder.key_value) == ACCEPTED
        odock.store_faults.hang = True
        odock.store_faults.hang_limit = 120.0

        deactivate(bridged_client, holder)
        wait_until(lambda: odock.commands_seen.arrived, timeout=30, what="the command sent")
        os.killpg(first.process.pid, signal.SIGKILL)  # the worker and its pool, mid-call
        first.process.wait(timeout=10)
    finally:
        first.kill()
    with bridged_sessions() as fresh:
        assert fresh.scalars(select(StoreCommand.acknowledged_at)).one() is None
    odock.store_faults.heal()  # the store answers again (the dead caller's call applies now)

    second = start_worker(bridged_settings, log_dir=tmp_path)
    try:
        wait_reaping(
            lambda: odock.call(holder.key_value) == REJECTED,
            timeout=60,
            what="the reaper finishing the revocation once the dead caller's lease ran out",
        )
    finally:
        second.stop()
    wait_until(lambda: cutoff_of(bridged_sessions, holder.key_id).acknowledged_at)
    command = command_of(bridged_sessions, holder.key_id)
    assert command.acknowledged_at is not None
    assert set(odock.commands_seen.arrived) == {str(command.id)}  # the same command, re-sent
    assert len(odock.commands_seen.arrived) >= 2
    assert min(odock.invalidations.times_for(str(holder.key_id))) >= (
        command.acknowledged_at.timestamp()
    )
    assert cutoff_of(bridged_sessions, holder.key_id).attempts >= 2
    # The command counts every send, the killed one too (counted as it started), so its
    # acknowledgement is known to be late and plans the second gateway invalidation.
    assert command.attempts == len(odock.commands_seen.arrived)
    with bridged_sessions() as fresh:
        planned = fresh.scalars(
            select(KeyCutoff.command).where(KeyCutoff.key_id == holder.key_id)
        ).all()
    assert "key.reinvalidate" in planned


def test_a_reactivation_after_a_worker_killed_mid_revoke_ends_with_the_key_active_in_the_store(
    bridged_session, bridged_sessions, bridged_client, bridged_settings, odock, tmp_path, publishing
):
    """The revoke is with a hanging store when its worker is killed; the person is reactivated
    before anyone finishes it. The store must see the revoke applied once, then the restore,
    and end holding the key active, as odock-sync does."""
    first = start_worker(bridged_settings, log_dir=tmp_path)
    try:
        holder = provision_key_holder(bridged_session, bridged_client, odock)
        odock.store_faults.hang = True
        odock.store_faults.hang_limit = 120.0
        deactivate(bridged_client, holder)
        wait_until(lambda: odock.commands_seen.arrived, timeout=30, what="the revoke sent")
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.kill()
    reactivate(bridged_session, bridged_client, holder)
    odock.store_faults.heal()  # the dead caller's revoke applies now

    second = start_worker(bridged_settings, log_dir=tmp_path)
    try:
        wait_reaping(
            lambda: all(c.acknowledged_at for c in commands_of(bridged_sessions, holder.key_id)),
            timeout=60,
            what="both commands acknowledged",
        )
    finally:
        second.stop()
    revoke, restore = commands_of(bridged_sessions, holder.key_id)
    assert (revoke.command_type, restore.command_type) == ("key.revoke", "key.restore")
    assert odock.store.applied_at(str(revoke.id)) < odock.store.applied_at(str(restore.id))
    assert odock.store.key(holder.key_id)["revoked"] is False
    answered = [(c.id, c.status) for c in odock.commands_seen.commands if c.status == 200]
    first_restore = answered.index((str(restore.id), 200))
    assert (str(revoke.id), 200) in answered[:first_restore]  # the restore only after it
    wait_until(lambda: odock.call(holder.key_value) == ACCEPTED, timeout=30, what="active again")


def commands_of(sessions, key_id):
    with sessions() as fresh:
        return fresh.scalars(
            select(StoreCommand)
            .where(StoreCommand.subject_id == key_id)
            .order_by(StoreCommand.issued_at)
        ).all()
