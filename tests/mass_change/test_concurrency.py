"""Parallel deactivations from one IdP count exactly: the gate row is locked while counting,
so no two requests both see room under the threshold."""

from __future__ import annotations

import threading

import requests

from models.enums import ChangeStatus, UserStatus
from tests.mass_change.conftest import THRESHOLD, changes, statuses
from tests.scim.payloads import okta_deactivate

PARALLEL = 12


def test_parallel_scim_deactivations_apply_exactly_the_threshold(
    live_server, gated, scim, sessions
):
    emails = [f"c{n}@gated.test" for n in range(PARALLEL)]
    ids = gated.scim_users(scim, *emails)
    barrier = threading.Barrier(PARALLEL)
    answers: list[int] = []
    lock = threading.Lock()

    def deactivate(scim_id: str) -> None:
        barrier.wait()
        response = requests.patch(
            f"{live_server}/scim/v2/Users/{scim_id}",
            json=okta_deactivate(),
            headers={
                "Authorization": f"Bearer {scim.token}",
                "Content-Type": "application/scim+json",
            },
            timeout=60,
        )
        with lock:
            answers.append(response.status_code)

    threads = [threading.Thread(target=deactivate, args=(scim_id,)) for scim_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert answers == [200] * PARALLEL
    revoked = statuses(sessions, emails).count(UserStatus.REVOKED)
    assert revoked == THRESHOLD
    assert len(changes(sessions, ChangeStatus.HELD)) == PARALLEL - THRESHOLD
    assert len(changes(sessions, ChangeStatus.APPLIED)) == THRESHOLD
