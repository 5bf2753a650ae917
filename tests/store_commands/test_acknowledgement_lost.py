"""The store applied and acknowledged a revoke; the worker's backend is terminated while it
records that acknowledgement (pg_terminate_backend, this run's database only). Nothing of the
answer is kept, so the cut-off stays the caller's until its lease runs out; then the reaper
sends the same command again, the store answers it as applied before, and the revocation ends
as usual: acknowledged, the gateway invalidated after it, the key proven dead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, finding_of
from tests.support.reaper import wait_reaping
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    # The store holds its answer while the test takes its lock: well within ODOCK_TIMEOUT.
    return bridged(
        settings,
        odock,
        celery_queue=f"{settings.celery_queue}-ack-lost",
        odock_timeout=15.0,
        odock_send_budget=1.0,
    )


@pytest.fixture
def maintenance(engine: Engine) -> Iterator[Connection]:
    """A connection to another database of the server, to find and terminate backends."""
    if engine.dialect.name != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    server = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        yield connection
    server.dispose()


def recording_backend(maintenance: Connection, database: str) -> tuple[int, str] | None:
    """The backend of this run's database waiting on a lock, and its statement."""
    row = maintenance.execute(
        text(
            "SELECT pid, query FROM pg_stat_activity"
            " WHERE datname = :name AND wait_event_type = 'Lock'"
        ),
        {"name": database},
    ).first()
    return (row.pid, row.query) if row else None


def test_a_revoke_whose_acknowledgement_is_lost_with_its_backend_is_sent_again_and_ends(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock, engine, maintenance
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.store_faults.hang_after_apply = True  # applies, then holds its answer
    odock.store_faults.hang_limit = 60.0

    deactivate(bridged_client, holder)
    wait_until(lambda: odock.commands_seen.arrived, what="the command at the store")
    command = command_of(bridged_sessions, holder.key_id)
    with engine.connect() as holding:  # the recording waits for this row, then loses its backend
        holding.execute(
            text("SELECT id FROM store_commands WHERE id = :id FOR UPDATE"), {"id": command.id}
        )
        odock.store_faults.release.set()  # the acknowledgement goes back to the worker
        pid, query = wait_until(
            lambda: recording_backend(maintenance, engine.url.database),
            what="the worker recording the acknowledgement",
        )
        assert "FROM store_commands" in query and "FOR UPDATE" in query
        maintenance.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        holding.rollback()
    odock.store_faults.heal()
    assert command_of(bridged_sessions, holder.key_id).acknowledged_at is None  # lost with it
    assert odock.invalidations.times_for(str(holder.key_id)) == []
    assert odock.call(holder.key_value) == ACCEPTED  # the gateway still serves its cache

    wait_reaping(
        lambda: odock.call(holder.key_value) == REJECTED,
        timeout=90,
        what="the reaper sending the command again once the caller's lease ran out",
    )
    finding = wait_reaping(
        lambda: (found := finding_of(bridged_sessions, holder.key_id)) and found.gateway_proof,
        what="the key proven dead",
    )
    assert finding["accepted"] is False
    command = command_of(bridged_sessions, holder.key_id)
    assert odock.commands_seen.arrived == [str(command.id)] * 2  # the same command, once more
    assert command.acknowledged_at is not None and command.attempts == 2
    # Applied once, at the first send: the store answered the second with that time.
    assert command.applied_at == odock.store.applied_at(str(command.id))
    assert min(odock.invalidations.times_for(str(holder.key_id))) >= (
        command.acknowledged_at.timestamp()
    )
    assert "task.database_unavailable_retrying" in bridged_worker.log()
