"""Two admins deciding one held directory run at once, over real HTTP: one decision, as if
one came after the other."""

from __future__ import annotations

import uuid
from collections import Counter

import requests
from sqlalchemy import select

from models.entities import AuditEvent, DirectorySyncRun
from tests.ldap.conftest import a_run_held_over_the_api
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import in_parallel

live_server = _live_server


def test_an_approval_and_two_discards_of_one_held_run_at_once_decide_it_once(
    client, session, sessions, directory, sync, live_server
):
    """Serially the first decision stands and the others are 409. The discard did not lock
    the run: a discard that read it quarantined overwrote an approval committed a moment
    before (the run 'discarded' with its approval queued), and two discards were both 200."""
    run = a_run_held_over_the_api(client, session, sessions, directory, sync)
    auth, held = run.auth, run.outcome
    base = f"{live_server}/api/v1/directory/runs/{held.run_id}"
    answers = in_parallel(
        [
            lambda verb=verb: requests.post(f"{base}/{verb}", headers=auth, timeout=60)
            for verb in ("discard", "approve", "discard")
        ]
    )
    codes = Counter(r.status_code for r in answers)
    assert codes[409] == 2 and codes[200] + codes[202] == 1, [r.text for r in answers]
    with sessions() as s:
        status = s.get_one(DirectorySyncRun, uuid.UUID(str(held.run_id))).status.value
        decided = s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.action.in_(
                    ["directory_sync.discarded", "directory_sync.approval_requested"]
                )
            )
        ).all()
        s.rollback()
    assert status == ("approving" if codes[202] else "discarded")
    assert len(decided) == 1, decided
