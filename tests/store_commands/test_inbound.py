"""Keys made in the stand-in reach odock-sync through /odock/v1, and what comes back from the
store never undoes a decision whose command the store has not acknowledged yet."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import StoreCommand, VirtualApiKey
from tests.store_commands.conftest import deactivate, provision_key_holder
from tests.support.odock.adapter import push_keys
from tests.support.odock.store import rename_key
from tests.support.reaper import wait_reaping

ACCEPTED, REJECTED = 200, 401


def held_key(sessions, key_id):
    with sessions() as fresh:
        return fresh.get(VirtualApiKey, key_id)


def test_a_key_made_in_the_stand_in_appears_in_odock_sync(
    bridged_session, bridged_sessions, bridged_client, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)

    key = held_key(bridged_sessions, holder.key_id)
    stored = odock.store.key(holder.key_id)
    assert key is not None and key.organisation_id == holder.org.id
    assert (key.owner_user_id, key.masked_value, key.version, key.revoked) == (
        holder.user_id,
        stored["masked_value"],
        stored["version"],
        False,
    )


def test_a_push_while_the_revoke_is_unacknowledged_does_not_make_the_key_active_again(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.store_faults.fail = True
    deactivate(bridged_client, holder)
    wait_reaping(
        lambda: len(odock.commands_seen.for_key(holder.key_id)) >= 2,
        timeout=30,
        what="the revoke refused by the failing store",
    )
    rename_key(odock.store, holder.key_id, "renamed in Odock")  # a newer version, still active

    push_keys(bridged_client, holder.odock_token, odock, holder.org.id)

    key = held_key(bridged_sessions, holder.key_id)
    assert (
        key.name == "renamed in Odock" and key.version == odock.store.key(holder.key_id)["version"]
    )
    assert key.revoked is True  # odock-sync's decision stands while its command is on its way

    odock.store_faults.heal()
    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, timeout=30, what="rejection")
    with bridged_sessions() as fresh:
        command = fresh.scalars(
            select(StoreCommand).where(StoreCommand.subject_id == holder.key_id)
        ).one()
        assert command.acknowledged_at is not None
    push_keys(bridged_client, holder.odock_token, odock, holder.org.id)
    key = held_key(bridged_sessions, holder.key_id)
    assert key.revoked is True and key.version == odock.store.key(holder.key_id)["version"]


def reconcile(engine, settings, organisation_id):
    from models.actions.odock_reconcile import reconcile_from_management_plane

    return reconcile_from_management_plane(engine, settings, organisation_id)


def test_the_reconcile_against_the_stand_in_repairs_lost_pushes(
    bridged_session, bridged_sessions, bridged_client, bridged_settings, engine, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    # Two changes in Odock whose pushes (or events) never arrived: a new key and a rename.
    lost_id, _value = odock.store.create_key(holder.org.id, owner_user_id=holder.user_id)
    rename_key(odock.store, holder.key_id, "renamed while the events were lost")

    run = reconcile(engine, bridged_settings, holder.org.id)

    assert run.status == "succeeded" and run.summary["drift"] == 2
    assert held_key(bridged_sessions, lost_id).owner_user_id == holder.user_id
    renamed = held_key(bridged_sessions, holder.key_id)
    assert renamed.name == "renamed while the events were lost"
    assert renamed.version == odock.store.key(holder.key_id)["version"]


def test_the_reconcile_while_the_revoke_is_unacknowledged_keeps_the_key_revoked(
    bridged_session,
    bridged_sessions,
    bridged_client,
    bridged_worker,
    bridged_settings,
    engine,
    odock,
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.store_faults.fail = True
    deactivate(bridged_client, holder)
    wait_reaping(
        lambda: len(odock.commands_seen.for_key(holder.key_id)) >= 2,
        timeout=30,
        what="the revoke refused by the failing store",
    )
    rename_key(odock.store, holder.key_id, "renamed in Odock")

    run = reconcile(engine, bridged_settings, holder.org.id)

    assert run.status == "succeeded"
    key = held_key(bridged_sessions, holder.key_id)
    assert key.name == "renamed in Odock" and key.revoked is True

    odock.store_faults.heal()
    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, timeout=30, what="rejection")
    wait_reaping(
        lambda: (
            held_key(bridged_sessions, holder.key_id) is not None
            and _acknowledged(bridged_sessions, holder.key_id)
        ),
        timeout=30,
        what="the acknowledgement recorded",
    )
    reconcile(engine, bridged_settings, holder.org.id)
    key = held_key(bridged_sessions, holder.key_id)
    assert key.revoked is True and key.version == odock.store.key(holder.key_id)["version"]


def _acknowledged(sessions, key_id):
    with sessions() as fresh:
        command = fresh.scalars(select(StoreCommand).where(StoreCommand.subject_id == key_id)).one()
        return command.acknowledged_at is not None
