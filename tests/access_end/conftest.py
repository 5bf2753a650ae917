"""End dates under a controlled clock: workers and beats whose clocks run ahead of the test's."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import SessionFactory
from models.entities import AuditEvent, Revocation, ScimUser, User
from models.enums import Source, UserStatus
from models.settings import Settings
from tests.cli.conftest import cli_env, run  # noqa: F401 (fixtures)
from tests.reviews.conftest import hook_server, hooks  # noqa: F401 (fixtures)
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, start_shifted, stop_all

# Every beat asks for the end-date scan each half second (ACCESS_END_TICK_SECONDS, 20 s by
# default); a person is due within a second. A test that waits "N beats more" sleeps N ticks.
TICK = 0.5
# How long before a date the workers and beats start (together, ready in about 3 s on an idle
# machine: twice that), so the date comes while they run. A start slower than this is the
# catch-up case instead (still on time: the first tick after it).
LEAD = timedelta(seconds=6)


@pytest.fixture
def clocked_settings(settings: Settings) -> Settings:
    """The suite's settings on a queue of their own (the suite's worker keeps real time)."""
    return settings.model_copy(
        update={
            "celery_queue": f"{settings.celery_queue}-ends-{uuid.uuid4().hex[:6]}",
            "access_end_tick_seconds": TICK,
        }
    )


@pytest.fixture
def run_ahead(
    clocked_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Start `workers` workers and `beats` beats whose clocks read `moment` now."""
    started: list[WorkerProcess] = []

    def start(moment: datetime, *, workers: int = 2, beats: int = 2) -> list[WorkerProcess]:
        offset = (moment - utcnow()).total_seconds()
        roles = ["worker"] * workers + ["beat"] * beats
        started.extend(
            start_shifted(clocked_settings, log_dir=tmp_path, offset=offset, roles=roles)
        )
        return started

    yield start
    stop_all(started)


def revocations_of(sessions: SessionFactory, user_id: uuid.UUID) -> list[Revocation]:
    with sessions() as session:
        return revocations(session, user_id)


def revocations(session: Session, user_id: uuid.UUID) -> list[Revocation]:
    return list(session.scalars(select(Revocation).where(Revocation.user_id == user_id)))


def audited(session: Session, action: str, user_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.target_id == str(user_id))
        )
        or 0
    )


def on_time(revoked_at: datetime, ends_at: datetime) -> bool:
    return ends_at <= revoked_at <= ends_at + timedelta(minutes=1)


def scim_user_id(session: Session, scim_id: str) -> uuid.UUID:
    return session.get_one(ScimUser, uuid.UUID(scim_id)).user_id


def assert_revoked_once_on_time(
    session: Session, sessions: SessionFactory, due: list[uuid.UUID], ends: datetime
) -> None:
    """Each of `due` revoked by the schedule within a minute of `ends`, and still only once
    after several more beats from every beat process."""
    for user_id in due:
        wait_until(lambda u=user_id: revocations_of(sessions, u), timeout=90, what="revoked")
    time.sleep(5 * TICK)
    session.expire_all()
    for user_id in due:
        (revocation,) = revocations(session, user_id)
        assert revocation.source is Source.SCHEDULE
        assert on_time(revocation.revoked_at, ends), (revocation.revoked_at, ends)
        assert audited(session, "user.revoked", user_id) == 1
        assert session.get_one(User, user_id).status is UserStatus.REVOKED
