"""IdP event deliveries sent at the same moment over real HTTP, then drained by several drains at
once: a delivery id is stored and applied exactly once, and conflicting events about one person
end in the state of the latest by the events' own times (docs/idp_events.md, Ordering)."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import requests
from sqlalchemy import func, select

from models.entities import AuditEvent, ReceivedDelivery, Revocation, User
from models.enums import UserStatus
from tests.events.conftest import Hooked, generic, signed
from tests.scim.conftest import live_server as _live_server
from tests.support import factories as f
from tests.support.parallel import in_parallel

live_server = _live_server
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
STATUS_ACTIONS = ("user.revoked", "user.reactivated")


@pytest.fixture(autouse=True)
def drains_run_here(monkeypatch) -> None:
    """The drains are run by the test, several at once; the receiver's wake-ups send nothing,
    so a worker left from an earlier test cannot drain first."""
    from worker.celery_app import celery_app

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)


def post(base: str, hooked: Hooked, body: bytes, headers: dict[str, str]):
    return lambda: requests.post(base + hooked.events_url, data=body, headers=headers, timeout=60)


def drain_at_once(hooked: Hooked, drains: int = 4) -> None:
    from worker.tasks.idp_events import drain_deliveries

    organisation = str(hooked.org.id)
    in_parallel([lambda: drain_deliveries(organisation)] * drains)
    drain_deliveries(organisation)  # whatever a drain that left at once left behind


def status_trail(sessions, user_id: uuid.UUID) -> list[str]:
    with sessions() as fresh:
        return list(
            fresh.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.target_id == str(user_id), AuditEvent.action.in_(STATUS_ACTIONS)
                )
            )
        )


def test_one_delivery_sent_sixteen_times_at_once_is_stored_and_applied_once(
    session, sessions, live_server, hooked
) -> None:
    user = f.make_user(session, hooked.org, email="ada@example.com")
    session.commit()
    event = generic("user.deactivated", user={"email": "ada@example.com"})
    body, headers = signed(hooked.signing_secret, event)

    answers = in_parallel([post(live_server, hooked, body, headers)] * 16)

    assert Counter(r.status_code for r in answers) == {202: 1, 200: 15}, [r.text for r in answers]
    assert Counter(r.json()["status"] for r in answers) == {"accepted": 1, "duplicate": 15}
    drain_at_once(hooked)
    with sessions() as fresh:
        stored = fresh.scalar(
            select(func.count())
            .select_from(ReceivedDelivery)
            .where(ReceivedDelivery.organisation_id == hooked.org.id)
        )
        assert stored == 1
        assert fresh.get_one(User, user.id).status is UserStatus.REVOKED
        assert fresh.scalar(select(func.count()).select_from(Revocation)) == 1
    assert status_trail(sessions, user.id) == ["user.revoked"]


@pytest.mark.parametrize("latest", ["user.deactivated", "user.reactivated"])
def test_conflicting_events_about_one_person_at_once_end_as_the_latest_says(
    session, sessions, live_server, hooked, latest: str
) -> None:
    """Twelve deliveries, deactivations and reactivations of one person at times T0+0..11 min,
    sent at once in a shuffled order: whatever order they arrive and are drained in, the
    person ends as the event of the latest time says, and the trail alternates."""
    user = f.make_user(session, hooked.org, email="ada@example.com")
    session.commit()
    kinds = ["user.deactivated", "user.reactivated"]
    times = list(range(12))
    calls = []
    for minute in times:
        kind = kinds[(minute + kinds.index(latest) + len(times) - 1) % 2]
        event = generic(
            kind,
            user={"email": "ada@example.com"},
            occurred_at=(T0 + timedelta(minutes=minute)).isoformat(),
        )
        body, headers = signed(hooked.signing_secret, json.dumps(event).encode())
        calls.append(post(live_server, hooked, body, headers))
    assert kind == latest
    random.Random(7).shuffle(calls)

    answers = in_parallel(calls)

    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    drain_at_once(hooked)
    expected = UserStatus.REVOKED if latest == "user.deactivated" else UserStatus.ACTIVE
    with sessions() as fresh:
        assert fresh.get_one(User, user.id).status is expected
        unprocessed = fresh.scalars(
            select(ReceivedDelivery.status).where(ReceivedDelivery.status != "processed")
        ).all()
    assert not unprocessed
    trail = status_trail(sessions, user.id)
    assert all(a != b for a, b in pairwise(trail)), trail
    last = trail[-1] if trail else "user.reactivated"  # never revoked: as if reactivated
    assert last == ("user.revoked" if expected is UserStatus.REVOKED else "user.reactivated")
