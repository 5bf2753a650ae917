"""The proof of a bridged revocation (the gateway's status of the revoked key) when the gateway
answers 503 or 429 with Retry-After: asked again no sooner than it said, at most
CUTOFF_RETRY_MAX later. Before, the Retry-After was ignored and the reaper asked again after
CUTOFF_RETRY_BASE (0.1 s here)."""

from __future__ import annotations

import itertools

import pytest

from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import command_of
from tests.support.reaper import wait_reaping

ASKED = 3  # seconds of the gateway's Retry-After, within CUTOFF_RETRY_MAX


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    return bridged(
        settings,
        odock,
        cutoff_retry_max=2 * ASKED,
        celery_queue=f"{settings.celery_queue}-proof-retry-after",
    )


def test_a_proof_the_gateway_asks_to_wait_for_is_asked_again_no_sooner(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.gateway_faults.status_throttled = [(503, str(ASKED)), (429, str(ASKED))]

    deactivate(bridged_client, holder)

    wait_reaping(
        lambda: command_of(bridged_sessions, holder.key_id).gateway_checked_at,
        timeout=50,
        what="the proof",
    )
    asks = odock.invalidations.status_times_for(str(holder.key_id))
    assert len(asks) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(asks)]
    assert all(gap >= ASKED - 0.1 for gap in gaps), gaps
    assert command_of(bridged_sessions, holder.key_id).gateway_accepted is False
