"""A cut-off's network calls (the gateway's invalidation and key status, the store's
commands) hold no database lock while the other end has not answered.

The gateway or store stand-in is a loopback server that holds each request until the test lets
it answer (a hanging gateway). While it holds the call, another connection writes the rows the
call is about and refuses to wait for any lock: PostgreSQL locks the key's cut-off and store
command rows FOR UPDATE NOWAIT and updates them; SQLite takes BEGIN IMMEDIATE (the write lock
every transaction of odock-sync takes, models/db.py) with no busy wait. Either fails at once
("could not obtain lock" / "database is locked") when the caller keeps a transaction open
across the call: on SQLite every SCIM and admin write would wait on the gateway."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from models.entities import KeyCutoff
from models.settings import Settings
from tests.cutoffs.test_cutoffs import revoked_keys
from tests.support.held_receiver import HeldReceiver, held_receiver

WAIT_FOR_CALL = 30.0  # a bound against hanging, not a timing


@pytest.fixture
def held(settings: Settings) -> Iterator[HeldReceiver]:
    """The gateway (and the store) at a receiver that holds every call until the test lets it
    answer; the call's own timeout far beyond the test."""
    from worker.runtime import init_runtime

    with held_receiver(status=503) as receiver:
        base = receiver.url.removesuffix("/hook")
        init_runtime(settings.model_copy(update={"gateway_url": base, "gateway_timeout": 60.0}))
        try:
            yield receiver
        finally:
            receiver.answer.set()
            init_runtime(settings)


def _in_thread(body: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = body()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def write_without_waiting(engine: Engine, key_ids: list[uuid.UUID]) -> None:
    """Update these keys' cut-offs at once, or fail: no lock wait of any length."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '1ms'"))
            connection.execute(
                select(KeyCutoff.id)
                .where(KeyCutoff.key_id.in_(key_ids))
                .with_for_update(nowait=True)
            )
            connection.execute(
                text("UPDATE key_cutoffs SET last_error = 'touched' WHERE key_id = ANY(:ids)"),
                {"ids": key_ids},
            )
        return
    database = engine.url.database
    assert database is not None
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")  # "database is locked" at once if it is held
        connection.execute("UPDATE key_cutoffs SET last_error = 'touched' WHERE 1 = 0")
        connection.execute("COMMIT")
    finally:
        connection.close()


def _while_held(receiver: HeldReceiver, engine: Engine, key_ids, body: Callable[[], Any]) -> None:
    thread, out = _in_thread(body)
    try:
        assert receiver.arrived.wait(WAIT_FOR_CALL), out
        assert thread.is_alive(), out  # the call is in flight
        write_without_waiting(engine, key_ids)
    finally:
        receiver.answer.set()
        thread.join(WAIT_FOR_CALL)
    assert "error" not in out, out


def test_a_gateway_invalidation_in_flight_holds_no_lock(session, engine, held):
    from worker.tasks import gateway

    _org, _admin, key_ids = revoked_keys(session)
    session.commit()
    _while_held(held, engine, key_ids, lambda: gateway.drive(key_ids=key_ids, reason="test"))


def test_the_reaper_calling_the_gateway_holds_no_lock(session, engine, held):
    from worker.tasks import cutoffs

    _org, _admin, key_ids = revoked_keys(session)
    session.commit()
    _while_held(held, engine, key_ids, cutoffs.reap)


def _bridged_revocation(session, engine) -> list[uuid.UUID]:
    from models.actions import lifecycle
    from models.db import make_session_factory
    from tests.support import factories as f

    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    session.commit()
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        lifecycle.revoke(bridged, user=bridged.merge(person), actor=f.SETUP)
        bridged.commit()
    return [key.id]


@pytest.fixture
def held_store(settings: Settings) -> Iterator[HeldReceiver]:
    """The store's management API and the gateway at the holding receiver (bridged)."""
    from worker.runtime import init_runtime

    with held_receiver(status=503) as receiver:
        base = receiver.url.removesuffix("/hook")
        init_runtime(
            settings.model_copy(
                update={
                    "odock_mode": "bridged",
                    "odock_management_url": base,
                    "odock_management_token": "token",
                    "odock_command_secret": "secret",
                    "odock_timeout": 60.0,
                    "gateway_url": base,
                    "gateway_timeout": 60.0,
                }
            )
        )
        try:
            yield receiver
        finally:
            receiver.answer.set()
            init_runtime(settings)


def test_a_store_command_in_flight_holds_no_lock(session, engine, held_store):
    from worker.tasks import odock

    key_ids = _bridged_revocation(session, engine)
    _while_held(held_store, engine, key_ids, lambda: odock.drive_store(key_ids=key_ids))


def test_a_key_proof_in_flight_holds_no_lock(session, engine, held_store):
    from models.actions import cutoffs
    from models.entities.cutoff import PROOF_COMMAND
    from tests.support import factories as f
    from worker.tasks import odock

    org = f.make_org(session)
    key_ids = [uuid.uuid4()]
    cutoffs.open_cutoffs(
        session,
        organisation_id=org.id,
        key_ids=key_ids,
        command=PROOF_COMMAND,
        reason="test",
        via_store=False,
    )
    session.commit()
    _while_held(held_store, engine, key_ids, lambda: odock.prove(key_ids=key_ids))
