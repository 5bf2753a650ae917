"""Fault scenarios for a cut-off: a revocation through `odock-sync serve` (real workers, beat,
a redis-server broker of its own) to the stand-in gateway, with one fault each. The fault tests
assert on what they return; benchmarks/cutoff_faults.py runs them and reports the times."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.entities import AuditEvent, KeyCutoff, RevocationReview
from models.enums import Role
from tests.support import factories as f
from tests.support.odock import OdockStandIn
from tests.support.processes import alive, descendants
from tests.support.redis_server import RedisServer
from tests.support.served import Served
from tests.support.wait import wait_until

DEADLINE = 10.0  # CUTOFF_DEADLINE of the scenarios: short, so they stay fast
GATEWAY_TIMEOUT = 2.0
REAP_INTERVAL = 0.5  # CUTOFF_REAP_INTERVAL: the reaper's tick
RETRY_MAX = 1.0  # CUTOFF_RETRY_MAX: the longest wait before a failed call is tried again


def served_env(
    stand_in: OdockStandIn, *, secret_key: str, queue: str, deadline: float = DEADLINE
) -> dict[str, str]:
    """The settings `serve` runs the scenarios with."""
    return {
        "SECRET_KEY": secret_key,
        "CELERY_QUEUE": queue,
        "GATEWAY_URL": stand_in.gateway_url,
        "GATEWAY_SECRET": stand_in.gateway_secret,
        "GATEWAY_TIMEOUT": str(GATEWAY_TIMEOUT),
        "CUTOFF_DEADLINE": str(deadline),
        "CUTOFF_REAP_INTERVAL": str(REAP_INTERVAL),
        "CUTOFF_RETRY_BASE": "0.5",
        "CUTOFF_RETRY_MAX": str(RETRY_MAX),
        "OUTBOX_RELAY_INTERVAL": "1",
        "NOTIFICATION_RETRY_BASE": "30",
        "NOTIFICATION_RETRY_MAX": "30",
        "OUTBOUND_ALLOW_LOOPBACK": "true",
        "BROKER_POLL_INTERVAL": "0.1",
        "SMTP_HOST": "",
    }


@dataclass
class Leaver:
    user_id: uuid.UUID
    key_ids: list[str]
    token: str
    organisation_id: uuid.UUID


@dataclass
class Outcome:
    """What happened to one revocation's cut-off."""

    answered_status: int
    answered_in: float  # seconds the revocation request took
    revoked_at: float  # time.time() when the request was sent
    effective: dict[str, list[float]]  # key id -> times the gateway answered 200 for it
    alarms: list[AuditEvent] = field(default_factory=list)
    recoveries: list[AuditEvent] = field(default_factory=list)
    web_answers_during_fault: list[int] = field(default_factory=list)
    # invalidation calls odock-sync saw fail after the gateway first answered 200 for a key
    failed_after_effective: int = 0

    @property
    def time_to_acknowledged(self) -> float:
        """From the revocation to the last key's first effective invalidation."""
        return max(times[0] for times in self.effective.values()) - self.revoked_at


def make_leaver(
    session: Session, *, keys: int = 2, hook_url: str = "", secret_key: str = ""
) -> Leaver:
    """An admin, a person with `keys` keys, and (with `hook_url`) a webhook for the review."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    key_ids = [str(f.make_key(session, org, owner=person).id) for _ in range(keys)]
    token = f.admin_token(session, org, admin)
    if hook_url:
        f.make_hook(session, org.id, hook_url, secret_key=secret_key, name="siem", events=[])
    session.commit()
    return Leaver(person.id, key_ids, token, org.id)


def revoke(served: Served, leaver: Leaver) -> tuple[int, float, float]:
    sent = time.time()
    started = time.monotonic()
    response = served.post(
        f"/api/v1/users/{leaver.user_id}/revoke",
        headers={"Authorization": f"Bearer {leaver.token}"},
    )
    return response.status_code, time.monotonic() - started, sent


def wait_effective(stand_in: OdockStandIn, leaver: Leaver, timeout: float = 90) -> None:
    wait_until(
        lambda: all(stand_in.invalidations.effective_for(k) for k in leaver.key_ids),
        timeout=timeout,
        interval=0.1,
        what="an effective invalidation of every key",
    )


def settle(sessions: Callable[[], Session], leaver: Leaver) -> None:
    """Wait until the cut-offs are acknowledged, then the longest retry wait and two reaper
    ticks more (so a second, duplicate call would have come by now)."""

    def acknowledged() -> bool:
        with sessions() as fresh:
            rows = fresh.scalars(
                select(KeyCutoff).where(
                    KeyCutoff.key_id.in_([uuid.UUID(k) for k in leaver.key_ids])
                )
            ).all()
            return bool(rows) and all(r.acknowledged_at for r in rows)

    wait_until(acknowledged, timeout=60, what="the cut-offs acknowledged")
    time.sleep(RETRY_MAX + 2 * REAP_INTERVAL)


def outcome(
    served: Served,
    stand_in: OdockStandIn,
    sessions: Callable[[], Session],
    leaver: Leaver,
    answered: tuple[int, float, float],
    web_answers: list[int] | None = None,
) -> Outcome:
    settle(sessions, leaver)
    effective = {k: stand_in.invalidations.effective_for(k) for k in leaver.key_ids}
    with sessions() as fresh:
        events = fresh.scalars(
            select(AuditEvent)
            .where(AuditEvent.organisation_id == leaver.organisation_id)
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        ).all()
    return Outcome(
        answered_status=answered[0],
        answered_in=answered[1],
        revoked_at=answered[2],
        effective=effective,
        alarms=[e for e in events if e.action == "cutoff.deadline_missed"],
        recoveries=[e for e in events if e.action == "cutoff.deadline_recovered"],
        web_answers_during_fault=web_answers or [],
        failed_after_effective=_failed_calls_since(
            served, min((t[0] for t in effective.values() if t), default=time.time())
        ),
    )


def _failed_calls_since(served: Served, since: float) -> int:
    """The gateway invalidation calls odock-sync logged as failed from `since` (time.time())."""
    failed = 0
    for line in served.log().splitlines():
        if '"gateway.invalidation_failed"' not in line:
            continue
        logged = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        failed += logged >= since
    return failed


def assert_each_key_invalidated_once(outcome: Outcome) -> None:
    """One call the gateway answered 200 for each key. A call the gateway answered but
    odock-sync saw fail (its timeout ran out first, on a starved machine) is rightly made
    again: one more answer per such failure, never otherwise."""
    counts = {key: len(times) for key, times in outcome.effective.items()}
    most = 1 + outcome.failed_after_effective
    assert all(1 <= n <= most for n in counts.values()), (counts, outcome.failed_after_effective)


def poll_web(served: Served, leaver: Leaver, seconds: float) -> list[int]:
    """Ask the web for a user and its health, again and again, for this long: the answers."""
    answers = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        answers.append(served.get("/healthz").status_code)
        answers.append(
            served.get(
                f"/api/v1/users/{leaver.user_id}",
                headers={"Authorization": f"Bearer {leaver.token}"},
            ).status_code
        )
        time.sleep(0.2)
    return answers


def redis_blip_during_a_pending_retry(
    served: Served,
    stand_in: OdockStandIn,
    broker: RedisServer,
    sessions: Callable[[], Session],
    leaver: Leaver,
    *,
    blip: float = 3.0,
) -> Outcome:
    """The gateway answers 503 (the invalidation waits for its next attempt, a notification
    waits out a 30 s Celery retry), Redis dies and comes back `blip` seconds later, the
    gateway recovers."""
    stand_in.gateway_faults.unavailable = True
    retries = served.log().count("Retry in 30")
    answered = revoke(served, leaver)
    wait_until(
        lambda: served.log().count("Retry in 30") > retries,
        timeout=60,
        what="a notification retry pending",
    )
    broker.kill()
    web = poll_web(served, leaver, blip)
    broker.start()
    stand_in.gateway_faults.unavailable = False
    wait_effective(stand_in, leaver)
    return outcome(served, stand_in, sessions, leaver, answered, web)


def worker_killed_during_the_gateway_call(
    served: Served, stand_in: OdockStandIn, sessions: Callable[[], Session], leaver: Leaver
) -> Outcome:
    """The gateway holds the call; the urgent worker's main process gets SIGKILL meanwhile."""
    faults = stand_in.gateway_faults
    faults.release.clear()
    faults.hang.set()
    kills = served.log().count("urgent-worker exited with -9")
    answered = revoke(served, leaver)
    wait_until(
        lambda: all(stand_in.invalidations.times_for(k) for k in leaver.key_ids),
        timeout=60,
        what="the gateway call in flight",
    )
    os.kill(served.child_pid("urgent@"), signal.SIGKILL)
    wait_until(
        lambda: served.log().count("urgent-worker exited with -9") > kills,
        what="serve to notice the kill",
    )
    faults.heal()  # the held call dies with a 503; the next one goes through
    wait_effective(stand_in, leaver)
    return outcome(served, stand_in, sessions, leaver, answered)


def gateway_down(
    served: Served,
    stand_in: OdockStandIn,
    sessions: Callable[[], Session],
    leaver: Leaver,
    *,
    outage: float,
    while_down: Callable[[], None] | None = None,
) -> Outcome:
    """The gateway answers 503 for `outage` seconds after the revocation."""
    stand_in.gateway_faults.unavailable = True
    answered = revoke(served, leaver)
    until = time.monotonic() + outage
    if while_down is not None:
        while_down()
    time.sleep(max(0.0, until - time.monotonic()))
    stand_in.gateway_faults.unavailable = False
    wait_effective(stand_in, leaver)
    return outcome(served, stand_in, sessions, leaver, answered)


def broker_down_during_the_revocation(
    served: Served,
    stand_in: OdockStandIn,
    broker: RedisServer,
    sessions: Callable[[], Session],
    leaver: Leaver,
    *,
    down_for: float = 3.0,
) -> Outcome:
    """Redis is down when the admin revokes; it comes back `down_for` seconds later."""
    broker.kill()
    answered = revoke(served, leaver)
    time.sleep(max(0.0, down_for - answered[1]))
    broker.start()
    wait_effective(stand_in, leaver)
    return outcome(served, stand_in, sessions, leaver, answered)


@dataclass
class ReviewOutcome:
    answered_status: int
    revoked_at: float  # time.time() when the request was sent
    opened_by: str  # the actor of `review.opened`


def worker_killed_before_the_review_opens(
    served: Served, sessions: Callable[[], Session], leaver: Leaver
) -> ReviewOutcome:
    """The bulk worker has taken the revocation's `reviews.open_for_revocation` (held before
    it can write the review: the test locks the reviews table) when its main process gets
    SIGKILL; serve kills its pool and restarts it. The message is gone with the worker (on
    Redis it stays unacknowledged for an hour; the outbox re-sends it after 900 s).
    PostgreSQL only (LOCK TABLE)."""
    kills = served.log().count("odock-sync: worker exited with -9")
    received = served.log().count("Task reviews.open_for_revocation[")
    with sessions() as holder:
        holder.execute(text("LOCK TABLE revocation_reviews IN EXCLUSIVE MODE"))
        answered = revoke(served, leaver)
        wait_until(
            lambda: served.log().count("Task reviews.open_for_revocation[") > received,
            what="the bulk worker to take the review task",
            explain=lambda: served.log()[-6000:],
        )
        worker = served.child_pid("worker@")
        pool = descendants(worker)
        os.kill(worker, signal.SIGKILL)
        wait_until(
            lambda: served.log().count("odock-sync: worker exited with -9") > kills,
            what="serve to notice the kill",
        )
        wait_until(lambda: not alive(pool), what="serve to kill the pool, the task with it")
        holder.rollback()
    review = wait_until(
        lambda: _review_of(sessions, leaver), timeout=90, interval=0.2, what="the review"
    )
    with sessions() as fresh:
        opened = fresh.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "review.opened", AuditEvent.target_id == str(review.id)
            )
        ).one()
    return ReviewOutcome(
        answered_status=answered[0],
        revoked_at=answered[2],
        opened_by=opened.actor,
    )


def _review_of(sessions: Callable[[], Session], leaver: Leaver) -> RevocationReview | None:
    with sessions() as fresh:
        return fresh.scalars(
            select(RevocationReview).where(RevocationReview.user_id == leaver.user_id)
        ).one_or_none()
