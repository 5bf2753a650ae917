"""A person's status changed by requests while an admin's revocation of them is being made, over
real HTTP: the requests wait for the person's lock (models.person_lock) and then decide on the
revocation, as if they came after it (guards: these held before)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.actions import lifecycle
from models.actor import Actor
from models.db import SessionFactory
from models.entities import AuditEvent, OutboxMessage, Revocation, User
from models.enums import Source, UserStatus
from tests.admin_api.conftest import World
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import while_held

live_server = _live_server
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


def revoking(user_id: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        lifecycle.revoke(own, user=own.get_one(User, user_id), actor=ADMIN, reason="left")
        own.flush()

    return hold


def call(
    live_server: str, world: World, method: str, path: str, body: Any = None
) -> Callable[[], requests.Response]:
    url, headers = f"{live_server}/api/v1{path}", world.auth("admin")
    return lambda: requests.request(method, url, json=body, headers=headers, timeout=60)


def trail(sessions: SessionFactory, user_id: uuid.UUID) -> Counter[str]:
    with sessions() as fresh:
        return Counter(
            fresh.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(user_id)))
        )


def test_a_reactivation_while_revoked_comes_after_the_revocation(
    engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    user = world.users["colleague"]
    (answer,) = while_held(
        engine, revoking(user), [call(live_server, world, "POST", f"/users/{user}/reactivate")]
    )
    assert answer.status_code == 200, answer.text
    events = trail(sessions, user)
    assert events["user.revoked"] == 1 and events["user.reactivated"] == 1, events
    with sessions() as fresh:
        assert fresh.get_one(User, user).status is UserStatus.ACTIVE


def test_revocations_while_revoked_revoke_once(
    engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    """One revocation, one audit event, one review to open; the later requests a clear 409."""
    user = world.users["colleague"]
    answers = while_held(
        engine,
        revoking(user),
        [
            call(live_server, world, "POST", f"/users/{user}/revoke", {"reason": "gone"}),
            call(live_server, world, "PATCH", f"/users/{user}", {"status": "REVOKED"}),
        ],
    )
    assert [a.status_code for a in answers] in ([409, 200], [409, 409]), [a.text for a in answers]
    assert answers[0].headers["Content-Type"] == "application/problem+json"
    events = trail(sessions, user)
    assert events["user.revoked"] == 1 and events["user.revocation_joined"] == 0, events
    with sessions() as fresh:
        revocations = fresh.scalar(
            select(func.count()).select_from(Revocation).where(Revocation.user_id == user)
        )
        reviews_to_open = fresh.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.task == lifecycle.TASK_OPEN_REVIEW)
        )
    assert (revocations, reviews_to_open) == (1, 1)
