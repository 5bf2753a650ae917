"""What the store answers, taken at its word and no further: a 2xx whose applied_at cannot be
stored is no acknowledgement (and stalls no other key of the round)."""

from __future__ import annotations

import pytest

from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, cutoff_of
from tests.support.odock.adapter import push_keys
from tests.support.odock.management import Answer
from tests.support.reaper import wait_reaping
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    return bridged(settings, odock, celery_queue=f"{settings.celery_queue}-store-answers")


def failed_once(sessions, key_id):
    """The key's store cut-off once a failed attempt is recorded and its lease given back."""
    cutoff = cutoff_of(sessions, key_id)
    return cutoff if cutoff.last_error and cutoff.leased_until is None else None


def test_an_applied_at_without_a_zone_is_no_acknowledgement_and_stalls_no_other_key(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """It was taken for one and could not be stored: the round's answers were lost for every
    key in it, round after round, and the other key was never cut off."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    other_id, other_value = odock.store.create_key(
        holder.org.id, owner_user_id=holder.user_id, name="second key"
    )
    push_keys(bridged_client, holder.odock_token, odock, holder.org.id)
    assert odock.call(holder.key_value) == ACCEPTED and odock.call(other_value) == ACCEPTED
    naive = Answer(200, {"applied_at": "2026-12-05T10:00:00"}, apply=True)
    odock.store_faults.answers[str(holder.key_id)] = naive

    deactivate(bridged_client, holder)

    wait_reaping(lambda: odock.call(other_value) == REJECTED, what="the other key cut off")
    assert command_of(bridged_sessions, other_id).acknowledged_at is not None
    failed = wait_until(lambda: failed_once(bridged_sessions, holder.key_id), what="recorded")
    assert "readable applied_at" in failed.last_error
    assert command_of(bridged_sessions, holder.key_id).acknowledged_at is None
    assert odock.call(holder.key_value) == ACCEPTED  # the gateway waits for an acknowledgement

    odock.store_faults.heal()  # the same command again, answered with its first applied_at

    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, what="the key cut off")
    assert command_of(bridged_sessions, holder.key_id).applied_at.tzinfo is not None
