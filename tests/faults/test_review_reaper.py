"""The bulk worker killed before a revocation's review opens: the fast reaper opens it.

In a module of its own, so that its `odock-sync serve` and broker are its own: on the shared
ones of tests/faults/test_cutoff_faults.py, after that module's tests had killed and restarted
the broker, the bulk worker under a load of 8-14 took no task of the default queue for 90 s
(twice in three full runs on 7 Dec 2026; it passed in the same module on a quiet machine).
That is a finding of its own, noted on issue 14, not what this test is about.
"""

from __future__ import annotations

import pytest

from tests.faults.test_cutoff_faults import healthy, served  # noqa: F401  (this module's own)
from tests.support import cutoff_faults as faults

pytestmark = pytest.mark.slow


def test_the_worker_killed_before_the_review_opens_leaves_it_to_the_reaper(
    session,
    sessions,
    served,  # noqa: F811 (the fixture imported above)
):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("holds the review task with LOCK TABLE")
    leaver = faults.make_leaver(session)

    outcome = faults.worker_killed_before_the_review_opens(served, sessions, leaver)

    assert outcome.answered_status == 200
    # The fast reaper opened it (REVIEW_GRACE, the worker's restart), not the outbox's
    # re-send 900 s later nor the hourly sweep: which one did is on record.
    assert outcome.opened_by == "cutoffs.reap"
