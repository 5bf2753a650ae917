"""Two admins deciding one review at once, over real HTTP: as if one came after the other
(one decision per finding, the review closed once, no 500)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import requests
from sqlalchemy import select

from models.db import SessionFactory
from models.entities import AuditEvent, ReviewFinding
from models.enums import FindingState
from tests.reviews.test_api import arrange, auth
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import in_parallel

live_server = _live_server


def decide(
    base: str, token: str, finding: ReviewFinding, verb: str
) -> Callable[[], requests.Response]:
    url = f"{base}/api/v1/findings/{finding.id}/{verb}"
    body = {} if verb == "acknowledge" else {"note": verb}  # an acknowledgement takes no note
    return lambda: requests.post(url, json=body, headers=auth(token), timeout=60)


def audited(sessions: SessionFactory, action: str, target: object) -> int:
    with sessions() as fresh:
        return len(
            fresh.scalars(
                select(AuditEvent.id).where(
                    AuditEvent.action == action, AuditEvent.target_id == str(target)
                )
            ).all()
        )


def test_one_finding_resolved_and_dismissed_at_once_is_decided_once(
    session, sessions, live_server
) -> None:
    """Serially the first answer stands and the others are 409; without the finding's lock
    every request read it open and each wrote its own decision and audit event."""
    _world, review, tokens = arrange(session)
    finding = next(f for f in review.findings if f.state is FindingState.OPEN)
    session.commit()
    verbs = ["resolve", "resolve", "dismiss", "dismiss"]
    answers = in_parallel([decide(live_server, tokens["admin"], finding, v) for v in verbs])
    assert Counter(r.status_code for r in answers) == {200: 1, 409: 3}, [r.text for r in answers]
    won = verbs[next(i for i, r in enumerate(answers) if r.status_code == 200)]
    decisions = audited(sessions, "review.finding_resolved", finding.id) + audited(
        sessions, "review.finding_dismissed", finding.id
    )
    assert decisions == 1
    with sessions() as fresh:
        state = fresh.get_one(ReviewFinding, finding.id).state
    assert state is (FindingState.RESOLVED if won == "resolve" else FindingState.DISMISSED)


def test_the_last_findings_decided_at_once_close_the_review_once(
    session, sessions, live_server
) -> None:
    """Two admins answer the last two open findings at the same moment: serially the second
    closes the review; without a lock on the review each saw the other's finding still open
    (neither closed it) or both closed it."""
    _world, review, tokens = arrange(session)
    still_open = [f for f in review.findings if f.state is FindingState.OPEN]
    session.commit()
    for finding in still_open[:-2]:
        assert decide(live_server, tokens["admin"], finding, "dismiss")().status_code == 200
    last = still_open[-2:]
    answers = in_parallel([decide(live_server, tokens["admin"], f, "resolve") for f in last])
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert audited(sessions, "review.resolved", review.id) == 1


def test_acknowledgements_at_once_are_recorded_once_per_finding(
    session, sessions, live_server
) -> None:
    """Serially a second acknowledgement finds the finding acknowledged and records nothing;
    at once, each read it unacknowledged and wrote its own event."""
    _world, review, tokens = arrange(session)
    still_open = [f for f in review.findings if f.state is FindingState.OPEN]
    session.commit()
    one = still_open[0]
    headers = auth(tokens["admin"])
    calls = [decide(live_server, tokens["admin"], one, "acknowledge")] * 2
    calls += [
        lambda: requests.post(
            f"{live_server}/api/v1/reviews/{review.id}/acknowledge", headers=headers, timeout=60
        )
    ] * 2
    answers = in_parallel(calls)
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    for finding in still_open:
        assert audited(sessions, "review.finding_acknowledged", finding.id) == 1, finding.kind
