"""The broker dies while a revoke waits out its backoff after the store's 500, and comes back.

A redis-server of the module's own is killed (SIGKILL: every queued message, reap and wake-up
flag gone with it) once the store has failed the command, stays down until the command's next
attempt is due, then starts empty. Nothing of the revocation lived only in the broker: the
worker reconnects, the reaper finds the cut-off in the database, the store applies the command
once, and the gateway forgets the key after the acknowledgement, then proves it dead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.entities import KeyCutoff
from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, finding_of
from tests.support.reaper import wait_reaping
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("broker")).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def bridged_settings(settings, odock, broker):
    return bridged(
        settings,
        odock,
        celery_broker_url=broker.url,
        celery_queue=f"{settings.celery_queue}-blip",
        cutoff_retry_base=1.0,  # the backoff outlasts the kill, so it ends inside the blip
        cutoff_retry_max=2.0,
    )


def store_cutoff_due(sessions, key_id) -> bool:
    """The revoke's store cut-off failed (its 500 recorded), is not done, and is due again."""
    with sessions() as fresh:
        row = fresh.scalars(
            select(KeyCutoff).where(KeyCutoff.key_id == key_id, KeyCutoff.via_store.is_(True))
        ).one()
    failed = row.last_error is not None and row.acknowledged_at is None
    return failed and row.next_attempt_at <= utcnow()


def test_a_broker_killed_while_a_revoke_waits_to_be_sent_again_delays_it_only(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock, broker
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.store_faults.fail = True
    deactivate(bridged_client, holder)
    wait_until(lambda: odock.commands_seen.for_key(holder.key_id), what="the store's 500")
    broker.kill()
    odock.store_faults.heal()
    wait_until(
        lambda: store_cutoff_due(bridged_sessions, holder.key_id),
        what="the next attempt due while the broker is down",
    )
    broker.start()
    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, timeout=90, what="rejected")
    finding = wait_reaping(
        lambda: (found := finding_of(bridged_sessions, holder.key_id)) and found.gateway_proof,
        what="the key proven dead",
    )
    assert finding["accepted"] is False
    command = command_of(bridged_sessions, holder.key_id)
    assert command.acknowledged_at is not None
    answers = [c.status for c in odock.commands_seen.for_key(holder.key_id)]
    assert answers[0] == 500 and answers.count(200) == 1
    assert min(odock.invalidations.times_for(str(holder.key_id))) >= (
        command.acknowledged_at.timestamp()
    )
    assert bridged_worker.process.poll() is None
    assert "Unrecoverable error" not in bridged_worker.log()
    assert "Connection to broker lost" in bridged_worker.log()  # the blip was felt
