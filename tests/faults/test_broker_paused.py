"""The Redis broker paused (SIGSTOP: a hung Redis that keeps its connections open and answers
nothing, then SIGCONT) while an IdP deactivates a person through SCIM, on `odock-sync serve`
(web, workers, beat) with a redis-server of its own and the stand-in gateway. The SCIM answer
does not wait on the broker, the person is cut off in the database before the broker answers
again, and once it does every key is invalidated exactly once: what the web's publisher wrote
before it gave up is read by Redis after SIGCONT, and the outbox relay sends the same work
again."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.entities import AuditEvent, RevocationReview, User
from models.enums import Role, UserStatus
from models.settings import Settings
from tests.scim.conftest import SCIM
from tests.scim.payloads import okta_create_user, okta_deactivate
from tests.support import cutoff_faults as faults
from tests.support import factories as f
from tests.support.odock import OdockStandIn
from tests.support.redis_server import RedisServer
from tests.support.served import Served, start_served
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

PUBLISH_TIMEOUT = 1.0  # BROKER_PUBLISH_TIMEOUT of the web: it gives up on the paused broker


@pytest.fixture(scope="module")
def served(
    settings: Settings,
    engine,
    stand_in: OdockStandIn,
    broker: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    env = faults.served_env(
        stand_in, secret_key=settings.secret_key, queue=f"paused-{uuid.uuid4().hex[:8]}"
    )
    env["BROKER_PUBLISH_TIMEOUT"] = str(PUBLISH_TIMEOUT)
    process = start_served(
        workdir=Path(tmp_path_factory.mktemp("served")),
        database_url=settings.database_url,
        broker_url=broker.url,
        env=env,
    )
    # /readyz is the web's; the pause must find every worker consuming, as in production.
    for worker in ("worker@", "urgent@", "drain@"):
        wait_until(
            lambda worker=worker: re.search(rf"{worker}\S* ready\.", process.log()),
            timeout=180,
            what=f"{worker} to be ready",
        )
    yield process
    process.stop()


def scim_leaver(session, served: Served) -> tuple[faults.Leaver, str, str]:
    """A person the IdP created through SCIM, with two keys: the leaver, its SCIM id, and the
    organisation's SCIM token."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    scim_token = f.scim_token(session, org)
    admin_token = f.admin_token(session, org, admin)
    session.commit()
    created = served.post(
        "/scim/v2/Users",
        json=okta_create_user(f"leaver-{org.slug}@example.com", external_id=uuid.uuid4().hex),
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": SCIM},
    )
    assert created.status_code == 201, created.text
    person = session.scalars(
        select(User).where(User.organisation_id == org.id, User.email.like("leaver-%"))
    ).one()
    key_ids = [str(f.make_key(session, org, owner=person).id) for _ in range(2)]
    session.commit()
    return faults.Leaver(person.id, key_ids, admin_token, org.id), created.json()["id"], scim_token


def test_a_scim_deactivation_while_the_broker_is_paused_cuts_off_once_after_it_resumes(
    session, sessions, served, stand_in, broker
):
    leaver, scim_id, scim_token = scim_leaver(session, served)
    assert broker.process is not None
    stand_in.reset()

    gave_up = served.log().count("outbox.publish_failed")
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        sent = time.time()
        started = time.monotonic()
        # Bounded by the client's timeout: a request held by the broker fails the test.
        answer = requests.patch(
            f"{served.url}/scim/v2/Users/{scim_id}",
            json=okta_deactivate(),
            headers={"Authorization": f"Bearer {scim_token}", "Content-Type": SCIM},
            timeout=30,
        )
        took = time.monotonic() - started
        with sessions() as fresh:
            cut_off_while_paused = fresh.get(User, leaver.user_id).status
        # The web's publisher writes to the paused broker and gives up after its timeout
        # (what it wrote may yet be read once the broker resumes); the relay in beat and the
        # workers wait on the broker meanwhile.
        wait_until(
            lambda: served.log().count("outbox.publish_failed") > gave_up,
            timeout=60,
            what="the web's publisher to give up on the paused broker",
        )
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    status = answer.status_code

    assert status == 200
    assert cut_off_while_paused == UserStatus.REVOKED
    faults.wait_effective(stand_in, leaver)
    outcome = faults.outcome(served, stand_in, sessions, leaver, (status, took, sent))
    faults.assert_each_key_invalidated_once(outcome)
    wait_until(
        lambda: review_ids(sessions, leaver.user_id),
        what="the review, whose task came through the paused broker too",
    )
    with sessions() as fresh:
        revoked = fresh.scalars(
            select(AuditEvent.action).where(
                AuditEvent.organisation_id == leaver.organisation_id,
                AuditEvent.target_id == str(leaver.user_id),
            )
        ).all()
    assert revoked.count("user.revoked") == 1, revoked
    assert len(review_ids(sessions, leaver.user_id)) == 1  # once


def review_ids(sessions, user_id) -> list:
    with sessions() as fresh:
        return list(
            fresh.scalars(select(RevocationReview.id).where(RevocationReview.user_id == user_id))
        )
