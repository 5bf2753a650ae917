"""Pushes and deletes of one Odock object at once, over real HTTP: whatever order they land in,
the newest version wins (docs/odock.md, Identifiers), as if they came one after the other."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import requests
from sqlalchemy import select

from connectors import signed_webhooks
from models import person_lock
from models.actions import lifecycle, odock_objects
from models.db import SessionFactory, make_session_factory
from models.entities import AuditEvent, OdockTombstone, User, VirtualApiKey
from tests.odock_inbound.conftest import Bridged, key_body
from tests.scim.conftest import live_server as _live_server
from tests.support import factories as f
from tests.support.parallel import _waiting_for_locks, in_parallel, in_thread
from tests.support.wait import wait_until

live_server = _live_server
ROUNDS = 4


class Plane:
    """The management plane's pushes to odock-sync on a live server."""

    def __init__(self, base: str, bridged: Bridged) -> None:
        self.base = f"{base}/odock/v1/keys"
        self.headers = {**bridged.auth, "Content-Type": "application/json"}
        self.secret = bridged.signing_secret

    def put(self, key_id: uuid.UUID, body: dict[str, Any]) -> Any:
        data = json.dumps(body)
        return lambda: requests.put(
            f"{self.base}/{key_id}", data=data, headers=self.headers, timeout=60
        )

    def event(self, payload: dict[str, Any], msg_id: str) -> Any:
        body = json.dumps(payload).encode()
        headers = {**self.headers, **signed_webhooks.sign(self.secret, msg_id=msg_id, body=body)}
        url = self.base.removesuffix("/keys") + "/events"
        return lambda: requests.post(url, data=body, headers=headers, timeout=60)

    def delete(self, key_id: uuid.UUID, version: int) -> Any:
        url = f"{self.base}/{key_id}?version={version}"
        return lambda: requests.delete(url, headers=self.headers, timeout=60)


def held(sessions: SessionFactory, key_id: uuid.UUID) -> tuple[int | None, int | None]:
    """The held key's version (None when there is none) and its tombstone's."""
    with sessions() as fresh:
        key = fresh.get(VirtualApiKey, key_id)
        buried = fresh.scalar(
            select(OdockTombstone.version).where(OdockTombstone.object_id == key_id)
        )
        return (key.version if key else None), buried


def key_trail(sessions: SessionFactory, key_id: uuid.UUID) -> list[AuditEvent]:
    with sessions() as fresh:
        return list(fresh.scalars(select(AuditEvent).where(AuditEvent.target_id == str(key_id))))


def test_sixteen_versions_of_one_key_pushed_at_once_end_at_the_newest(
    bridged: Bridged, live_server: str, sessions: SessionFactory
) -> None:
    plane = Plane(live_server, bridged)
    for _ in range(ROUNDS):
        key_id = uuid.uuid4()
        calls = [plane.put(key_id, key_body(name=f"v{n}", version=n)) for n in range(1, 17)]
        random.Random(3).shuffle(calls)

        answers = in_parallel(calls)

        assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
        assert held(sessions, key_id) == (16, None)
        with sessions() as fresh:
            assert fresh.get_one(VirtualApiKey, key_id).name == "v16"
        trail = key_trail(sessions, key_id)
        assert [e.action for e in trail].count("odock.key.created") == 1
        applied = sum(1 for r in answers if r.json()["applied"])
        assert len(trail) == applied  # one audit event per effective change


def test_a_newer_delete_at_once_with_older_pushes_leaves_the_key_deleted(
    bridged: Bridged, live_server: str, sessions: SessionFactory
) -> None:
    """Serially, pushes older than a delete either come before it (and are deleted with the
    key) or after it (and are ignored at its tombstone): the key ends deleted either way. A
    push that read no tombstone before the delete committed went on to create the key again."""
    plane = Plane(live_server, bridged)
    for round_ in range(ROUNDS):
        key_id = uuid.uuid4()
        if round_ % 2:  # the key held before; else a key this side never had
            assert plane.put(key_id, key_body(version=1))().status_code == 200
        calls = [plane.put(key_id, key_body(name=f"v{n}", version=n)) for n in range(2, 12)]
        calls.insert(5, plane.delete(key_id, 20))

        answers = in_parallel(calls)

        assert {r.status_code for r in answers} <= {200, 204}, [r.text for r in answers]
        assert held(sessions, key_id) == (None, 20), f"round {round_}"


def test_a_newer_push_at_once_with_an_older_delete_leaves_the_newer_key(
    bridged: Bridged, live_server: str, sessions: SessionFactory
) -> None:
    plane = Plane(live_server, bridged)
    for round_ in range(ROUNDS):
        key_id = uuid.uuid4()
        if round_ % 2:
            assert plane.put(key_id, key_body(version=1))().status_code == 200
        calls = [plane.delete(key_id, n) for n in range(2, 10)]
        calls.insert(3, plane.put(key_id, key_body(name="newest", version=30)))

        answers = in_parallel(calls)

        assert {r.status_code for r in answers} <= {200, 204}, [r.text for r in answers]
        key_version, _ = held(sessions, key_id)
        assert key_version == 30, f"round {round_}"


def test_pushes_and_change_events_of_one_key_at_once_end_at_the_newest(
    bridged: Bridged, live_server: str, sessions: SessionFactory, monkeypatch: Any
) -> None:
    """Events (each sent twice, under one webhook-id) and pushes of versions 1-16 at once,
    then the drains at once: each event is stored once, and the key ends at version 16."""
    from worker.celery_app import celery_app
    from worker.tasks.idp_events import drain_deliveries

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)  # drained below
    plane = Plane(live_server, bridged)
    key_id = uuid.uuid4()
    calls = []
    for version in range(1, 17):
        body = key_body(name=f"v{version}", version=version)
        if version % 2:
            calls.append(plane.put(key_id, body))
            continue
        event = {"type": "key.upserted", "id": str(key_id), "data": body, "version": version}
        calls += [plane.event(event, f"msg_{version}")] * 2
    random.Random(5).shuffle(calls)

    answers = in_parallel(calls)

    assert {r.status_code for r in answers} <= {200, 202}, [r.text for r in answers]
    assert sum(r.status_code == 202 for r in answers) == 8  # each event stored once
    organisation = str(bridged.org.id)
    in_parallel([lambda: drain_deliveries(organisation)] * 3)
    drain_deliveries(organisation)
    assert held(sessions, key_id) == (16, None)
    with sessions() as fresh:
        assert fresh.get_one(VirtualApiKey, key_id).name == "v16"


def test_a_push_for_a_leaver_waits_for_the_key_before_it_locks_the_leaver(
    bridged: Bridged, live_server: str, sessions: SessionFactory, engine: Any
) -> None:
    """A drain batch holds a key's lock (an earlier event of it) and then locks a leaver (a
    later event of another key of theirs), as it locks in event order. A push of the first key
    for that leaver locked the leaver first and then waited for the key: the two waited for
    each other, and PostgreSQL broke the circle by failing the push. The push now waits for
    the key before it locks anyone. (SQLite runs one writer at a time: nothing waits in a
    circle there, and the push goes through as well.)"""
    with sessions() as setup:
        owner = setup.get_one(User, bridged.owner.id)
        lifecycle.revoke(setup, user=owner, actor=f.SETUP, reason="left")
        setup.commit()
    key_id = uuid.uuid4()
    push = Plane(live_server, bridged).put(key_id, key_body(bridged.owner, version=2))
    with make_session_factory(engine)() as drain:
        odock_objects._lock_object(drain, key_id)
        thread, out = in_thread(push)
        wait_until(lambda: _waiting_for_locks(engine, 1), timeout=60, what="the push waiting")
        person_lock.lock_people(drain, [bridged.owner.id])
        drain.commit()
    thread.join(60)
    assert out["result"].status_code == 200, out["result"].text
    assert held(sessions, key_id) == (2, None)
