"""Parallel deactivations from one IdP count exactly: the gate row is locked while counting,
so no two requests both see room under the threshold."""

from __future__ import annotations

import requests

from models.enums import ChangeStatus, UserStatus
from tests.mass_change.conftest import THRESHOLD, audit_actions, changes, statuses
from tests.scim.payloads import okta_deactivate
from tests.support.parallel import in_parallel

PARALLEL = 12


def test_parallel_scim_deactivations_apply_exactly_the_threshold(
    live_server, gated, scim, sessions
):
    emails = [f"c{n}@gated.test" for n in range(PARALLEL)]
    ids = gated.scim_users(scim, *emails)

    def deactivate(scim_id: str) -> int:
        return requests.patch(
            f"{live_server}/scim/v2/Users/{scim_id}",
            json=okta_deactivate(),
            headers={
                "Authorization": f"Bearer {scim.token}",
                "Content-Type": "application/scim+json",
            },
            timeout=60,
        ).status_code

    answers = in_parallel([lambda scim_id=scim_id: deactivate(scim_id) for scim_id in ids])

    assert answers == [200] * PARALLEL
    revoked = statuses(sessions, emails).count(UserStatus.REVOKED)
    assert revoked == THRESHOLD
    assert len(changes(sessions, ChangeStatus.HELD)) == PARALLEL - THRESHOLD
    assert len(changes(sessions, ChangeStatus.APPLIED)) == THRESHOLD


def test_a_hold_and_its_batch_decided_at_once_decide_every_change_once(
    live_server, gated, scim, sessions
):
    """Admins approve one held change, discard it, and discard its whole batch at the same
    moment. In any serial order every change of the batch ends decided once (a batch decided
    after one of its changes takes the rest); the batch's discard was refused 409 when it
    had read that change as held before another admin decided it."""
    emails = [f"d{n}@gated.test" for n in range(THRESHOLD + 2)]
    for scim_id in gated.scim_users(scim, *emails):
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200
    held = changes(sessions, ChangeStatus.HELD)
    assert len(held) == 2
    base = f"{live_server}/api/v1/mass-change"
    one, batch = held[0], held[1].batch_id
    assert one.batch_id == batch
    calls = [
        f"{base}/holds/{one.id}/approve",
        f"{base}/holds/{one.id}/discard",
        f"{base}/batches/{batch}/discard",
    ]
    answers = in_parallel(
        [
            lambda url=url: requests.post(url, headers=gated.admin_headers, timeout=60)
            for url in calls
        ]
    )
    codes = [r.status_code for r in answers]
    assert 500 not in codes and codes.count(200) >= 1, [r.text for r in answers]
    decided = changes(sessions, ChangeStatus.APPROVED) + changes(sessions, ChangeStatus.DISCARDED)
    assert sorted(h.id for h in decided) == sorted(h.id for h in held)
    assert not changes(sessions, ChangeStatus.HELD)
    decisions = [a for a in audit_actions(sessions) if a.endswith(("approved", "discarded"))]
    assert len(decisions) == len(held), (decisions, codes)
