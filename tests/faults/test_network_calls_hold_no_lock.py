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

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from models.settings import Settings
from tests.cutoffs.test_cutoffs import revoked_keys
from tests.support.held_dns import HeldNameServer, held_name_server
from tests.support.held_receiver import HeldReceiver, held_receiver
from tests.support.keys import TEST_SECRET_KEY
from tests.support.no_wait import write_without_waiting
from tests.support.parallel import in_thread

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


def _while_held(receiver: HeldReceiver, engine: Engine, key_ids, body: Callable[[], Any]) -> None:
    thread, out = in_thread(body)
    try:
        assert receiver.arrived.wait(WAIT_FOR_CALL), out
        assert thread.is_alive(), out  # the call is in flight
        write_without_waiting(
            engine, "key_cutoffs", key_ids, key="key_id", assignment="last_error = 'touched'"
        )
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


# --- an admin saving a destination while its name server hangs -------------------------------
#
# The admin's request resolves the destination's name (a notification hook's, an audit
# stream's, a directory server's) through a loopback name server (OUTBOUND_DNS_SERVERS) that
# holds every query until the test lets it answer. Meanwhile the same probe as above (SQLite:
# BEGIN IMMEDIATE without a busy wait; PostgreSQL: the edited row FOR UPDATE NOWAIT) and a
# SCIM deactivation (an IdP cutting a leaver off) must both go through. Before, the name was
# resolved inside the request's transaction: on SQLite its write lock was held for as long as
# the name server took, and an edit held its row's lock on PostgreSQL too.

NAMES = {
    "hooks.example.test": "127.0.0.1",
    "siem.example.test": "127.0.0.1",
    "directory.example.test": "127.0.0.1",
    "metadata.example.test": "169.254.169.254",  # a cloud's metadata service: refused
}


@dataclass
class AdminScene:
    client: FlaskClient  # the admin's
    scim: FlaskClient  # the IdP's, at the same app
    admin: dict[str, str]
    idp: dict[str, str]
    rows: dict[str, tuple[str, uuid.UUID]]  # what an edit changes: its table and id
    leaver_id: str


@pytest.fixture
def name_server() -> Iterator[HeldNameServer]:
    with held_name_server(NAMES) as server:
        yield server


@pytest.fixture
def admin_scene(session, settings, client_with, name_server) -> AdminScene:
    from models.actions.directory_connectors import create_connector
    from models.enums import Role
    from tests.scim.payloads import okta_create_user
    from tests.support import factories as f

    changes = {"outbound_dns_servers": name_server.servers, "outbound_dns_timeout": 60.0}
    client, scim = client_with(**changes), client_with(**changes)
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    hook, _ = f.make_hook(session, org.id, "http://127.0.0.1:9/hook", secret_key=TEST_SECRET_KEY)
    stream, _ = f.make_stream(
        session,
        org.id,
        "http://127.0.0.1:9/siem",
        secret_key=TEST_SECRET_KEY,
        name="stream",
        from_beginning=False,
    )
    connector = create_connector(
        session,
        organisation=org,
        fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:9"], "base_dn": BASE_DN},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    admin_secret, scim_secret = f.admin_token(session, org, admin), f.scim_token(session, org)
    session.commit()
    idp = {"Authorization": f"Bearer {scim_secret}", "Content-Type": "application/scim+json"}
    created = scim.post("/scim/v2/Users", json=okta_create_user("leaver@example.com"), headers=idp)
    assert created.status_code == 201, created.text
    return AdminScene(
        client=client,
        scim=scim,
        admin={"Authorization": f"Bearer {admin_secret}"},
        idp=idp,
        rows={
            "hook": ("notification_hooks", hook.id),
            "stream": ("audit_streams", stream.id),
            "connector": ("directory_connectors", connector.id),
        },
        leaver_id=created.json["id"],
    )


BASE_DN = "dc=example,dc=test"


# (what is edited, or None for a create; method; path; body; the status it answers)
SAVES = [
    pytest.param(
        None,
        "POST",
        "/api/v1/notification-hooks",
        {"name": "new", "kind": "webhook", "target": "https://hooks.example.test/in"},
        201,
        id="hook-create",
    ),
    pytest.param(
        "hook",
        "PATCH",
        "/api/v1/notification-hooks/{id}",
        {"target": "https://hooks.example.test/in"},
        200,
        id="hook-edit",
    ),
    pytest.param(
        None,
        "POST",
        "/api/v1/audit-streams",
        {"name": "new", "preset": "generic", "target": "https://siem.example.test/in"},
        201,
        id="stream-create",
    ),
    pytest.param(
        "stream",
        "PATCH",
        "/api/v1/audit-streams/{id}",
        {"target": "https://siem.example.test/in"},
        200,
        id="stream-edit",
    ),
    pytest.param(
        None,
        "POST",
        "/api/v1/directory/connectors",
        {"name": "new", "server_urls": ["ldap://directory.example.test"], "base_dn": BASE_DN},
        201,
        id="connector-create",
    ),
    pytest.param(
        "connector",
        "PATCH",
        "/api/v1/directory/connectors/{id}",
        {"server_urls": ["ldaps://directory.example.test"]},
        200,
        id="connector-edit",
    ),
]


def write_row_without_waiting(engine: Engine, row: tuple[str, uuid.UUID] | None) -> None:
    """Take the write lock (SQLite) or this row's lock (PostgreSQL) at once, or fail."""
    if row is None:
        if engine.dialect.name != "postgresql":
            write_without_waiting(engine, "organisations")  # the database's write lock
        return  # PostgreSQL: a create's transaction holds no lock here; its outcome is checked
    table, row_id = row
    write_without_waiting(engine, table, [row_id])


@pytest.mark.parametrize(("edited", "method", "path", "body", "status"), SAVES)
def test_an_admin_saving_a_destination_holds_no_lock_while_its_name_resolves(
    engine, admin_scene, name_server, edited, method, path, body, status
):
    from tests.scim.payloads import okta_deactivate

    scene = admin_scene
    row = scene.rows[edited] if edited else None
    url = path.format(id=row[1] if row else "")
    saving, out = in_thread(
        lambda: scene.client.open(url, method=method, json=body, headers=scene.admin)
    )
    try:
        assert name_server.arrived.wait(WAIT_FOR_CALL), out
        assert saving.is_alive(), out  # the admin's request waits on the name server
        write_row_without_waiting(engine, row)
        leaver = scene.scim.patch(
            f"/scim/v2/Users/{scene.leaver_id}", json=okta_deactivate(), headers=scene.idp
        )
        assert leaver.status_code == 200, leaver.text
        assert leaver.json["active"] is False
    finally:
        name_server.answer.set()
        saving.join(WAIT_FOR_CALL)
    assert "error" not in out, out
    answer = out["result"]
    assert answer.status_code == status, answer.text
    saved = answer.json
    assert saved.get("target", saved.get("server_urls")) == (
        body.get("target") or body["server_urls"]
    )


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/api/v1/notification-hooks",
            {"name": "n", "kind": "webhook", "target": "https://metadata.example.test/x"},
            "link-local address 169.254.169.254 is not allowed",
        ),
        (
            "/api/v1/audit-streams",
            {"name": "n", "preset": "generic", "target": "https://nowhere.example.test/x"},
            "the host 'nowhere.example.test' does not resolve",
        ),
        (
            "/api/v1/directory/connectors",
            {"name": "n", "server_urls": ["ldap://metadata.example.test"], "base_dn": BASE_DN},
            "'ldap://metadata.example.test': link-local address 169.254.169.254 is not allowed",
        ),
    ],
)
def test_a_destination_resolved_first_is_refused_as_before(
    admin_scene, name_server, unchanged, path, body, message
):
    """Resolved before the transaction, judged as before: the same refusal, nothing saved."""
    name_server.answer.set()
    unchanged()
    answer = admin_scene.client.post(path, json=body, headers=admin_scene.admin)
    assert answer.status_code == 400, answer.text
    assert message in answer.text
    unchanged()
