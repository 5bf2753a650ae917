"""The web tier under real PostgreSQL faults, over HTTP to gunicorn as `odock-sync serve` runs it:
the service's own backends terminated between requests and in the middle of one, the
database refusing connections as while it restarts, and a row or table lock held by another
session past the web's lock timeout. Every protocol answers 503
in its own format with a Retry-After (SCIM error JSON, problem JSON for the admin API and the
IdP event receiver, the enrollment page), keeps nothing of the request, and the very next
request after the fault is served without restarting anything.

Only the run's own database is touched (pg_terminate_backend on its backends, a lock taken by
the test); the machine's PostgreSQL keeps running. The embedded SQLite's "database is locked"
is tests/ops/test_database_busy.py's."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import Connection, Engine, create_engine, select, text

from models.access import Viewer
from models.actions import invitations, odock_bridge, tokens
from models.entities import Invitation, Organisation, User, VirtualApiKey
from models.enums import Role, TokenScope, UserStatus
from models.settings import Settings
from tests.events import okta_payloads as okta
from tests.events.conftest import Hooked, configure, generic, okta_headers, signed
from tests.odock_inbound.conftest import key_body
from tests.scim.conftest import SCIM, ops
from tests.scim.payloads import okta_create_user
from tests.support import factories as f
from tests.support.db_outage import refusing_connections, terminate_every_backend
from tests.support.served import web_as_served
from tests.support.wait import wait_until

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
IDENTITY_HEADER = "X-Odock-Verified-Email"
INVITEE = "invitee@example.com"
LOCK_TIMEOUT = 1.0  # seconds: WEB_DATABASE_LOCK_TIMEOUT of the web under test
# WEB_DATABASE_STATEMENT_TIMEOUT of the web under test: its longest, so that a request waiting
# on a lock the test holds can only be ended by the lock timeout before HANG_GUARD.
STATEMENT_TIMEOUT = 3600.0
# How long a request may take before the test calls it hung, not a speed check: before the
# web had a lock timeout it waited as long as the lock was held, which here is until it
# answers.
HANG_GUARD = 300.0


@pytest.fixture(scope="module", autouse=True)
def on_postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating backends is PostgreSQL's (SQLite: tests/ops/test_database_busy)")


@pytest.fixture(scope="module")
def web(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The web process as `odock-sync serve` starts it, one worker of four threads."""
    env = {
        "ENROLLMENT_IDENTITY_HEADER": IDENTITY_HEADER,
        "WEB_DATABASE_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
        "WEB_DATABASE_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
    }
    workdir = tmp_path_factory.mktemp("web")
    with web_as_served(settings, workdir, workers=1, threads=4, env=env) as served:
        yield served.url


@dataclass
class Scene:
    base: str
    org: Organisation
    person: User
    scim_id: str
    group_id: str
    hooked: Hooked
    invitation_token: str
    scim: dict[str, str]
    admin: dict[str, str]
    odock: dict[str, str]
    odock_signing_secret: str
    timeout: float = 30.0

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return requests.request(method, self.base + path, **kwargs)

    def scim_call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call(method, "/scim/v2" + path, headers=self.scim, **kwargs)

    def deactivate(self) -> requests.Response:
        body = ops({"op": "replace", "path": "active", "value": False})
        return self.scim_call("PATCH", f"/Users/{self.scim_id}", json=body)

    def get_user(self) -> requests.Response:
        return self.scim_call("GET", f"/Users/{self.scim_id}")

    def create(self) -> requests.Response:
        body = okta_create_user("sam@example.com", "ext-sam")
        return self.scim_call("POST", "/Users", json=body)

    def leave_group(self) -> requests.Response:
        body = ops({"op": "remove", "path": f'members[value eq "{self.scim_id}"]'})
        return self.scim_call("PATCH", f"/Groups/{self.group_id}", json=body)

    def admin_revoke(self) -> requests.Response:
        url = f"/api/v1/users/{self.person.id}/revoke"
        return self.call("POST", url, json={"reason": "left"}, headers=self.admin)

    def event(self) -> requests.Response:
        payload = generic("user.deactivated", user={"email": "nobody@example.com"})
        body, headers = signed(self.hooked.signing_secret, payload)
        return self.call("POST", self.hooked.events_url, data=body, headers=headers)

    def okta_event(self) -> requests.Response:
        target = okta.user_target("00u1nobody0000000000", "nobody@example.com")
        body = okta.delivery(okta.event("user.lifecycle.deactivate", [target]))
        return self.call("POST", self.hooked.okta_url, json=body, headers=okta_headers())

    def odock_key(self) -> requests.Response:
        """Odock's management plane pushes a key of the person."""
        body = key_body(self.person, name="pushed")
        return self.call("PUT", f"/odock/v1/keys/{uuid.uuid4()}", json=body, headers=self.odock)

    def odock_event(self) -> requests.Response:
        """Odock's management plane sends a signed change event."""
        payload = {"type": "key.upserted", "id": str(uuid.uuid4()), "version": 1}
        payload["data"] = key_body(self.person, name="evented")
        body, headers = signed(self.odock_signing_secret, payload)
        return self.call("POST", "/odock/v1/events", data=body, headers={**self.odock, **headers})

    def enroll_page(self) -> requests.Response:
        headers = {IDENTITY_HEADER: INVITEE}
        return self.call("GET", f"/enroll/{self.invitation_token}", headers=headers)

    def enroll(self) -> requests.Response:
        page = self.enroll_page()
        assert page.status_code == 200, page.text
        found = re.search(r'name="form_key" value="([0-9a-f]+)"', page.text)
        assert found, page.text
        return self.call(
            "POST",
            f"/enroll/{self.invitation_token}",
            data={"name": "Ina Invitee", "form_key": found.group(1)},
            headers={IDENTITY_HEADER: INVITEE},
        )


@pytest.fixture
def scene(web: str, session, settings: Settings, engine: Engine) -> Iterator[Scene]:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    scim = {"Authorization": f"Bearer {f.scim_token(session, org)}", "Content-Type": SCIM}
    admin_headers = {"Authorization": f"Bearer {f.admin_token(session, org, admin)}"}
    hooked = configure(session, settings, org)
    odock = tokens.create_token(session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP)
    odock_signing = odock_bridge.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    issued = invitations.invite(
        session,
        viewer=Viewer.for_user(admin),
        email=INVITEE,
        role=Role.USER,
        actor=f.SETUP,
        secret_key=settings.secret_key,
    )
    session.commit()
    created = requests.post(
        f"{web}/scim/v2/Users", json=okta_create_user("pat@example.com"), headers=scim, timeout=30
    )
    assert created.status_code == 201, created.text
    group = requests.post(
        f"{web}/scim/v2/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Research",
            "members": [{"value": created.json()["id"]}],
        },
        headers=scim,
        timeout=30,
    )
    assert group.status_code == 201, group.text
    person = session.scalars(select(User).where(User.email_key == "pat@example.com")).one()
    f.make_key(session, org, owner=person)
    session.commit()
    yield Scene(
        base=web,
        org=org,
        person=person,
        scim_id=created.json()["id"],
        group_id=group.json()["id"],
        hooked=hooked,
        invitation_token=issued.token,
        scim=scim,
        admin=admin_headers,
        odock={"Authorization": f"Bearer {odock.secret}"},
        odock_signing_secret=odock_signing.secret,
    )
    # The backends this process held were terminated too: the next test starts afresh.
    engine.dispose()


def person_state(engine: Engine, person: User) -> tuple[Any, ...]:
    """The person's status and keys, the invitation's status, and how many people, audit
    events, outbox messages, revocations and received deliveries there are."""
    with engine.connect() as connection:
        status = connection.scalar(select(User.status).where(User.id == person.id))
        revoked = connection.scalars(
            select(VirtualApiKey.revoked).where(VirtualApiKey.owner_user_id == person.id)
        ).all()
        counts = [
            connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in (
                "users",
                "virtual_api_keys",
                "team_memberships",
                "audit_events",
                "outbox",
                "revocations",
                "received_deliveries",
            )
        ]
        invited = connection.scalar(select(Invitation.status).where(Invitation.email == INVITEE))
    return status, sorted(revoked), invited, *counts


def assert_busy_scim(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/scim+json")
    assert response.json()["schemas"] == [SCIM_ERROR] and response.json()["status"] == "503"
    assert int(response.headers["Retry-After"]) >= 1


def assert_busy_problem(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert int(response.headers["Retry-After"]) >= 1


def assert_busy_page(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'data-kind="unavailable"' in response.text
    assert "Traceback" not in response.text
    assert int(response.headers["Retry-After"]) >= 1


# 2. Between requests: every pooled connection of the web killed; the next request is served.


def test_the_first_request_after_its_pooled_connections_were_killed_is_served(
    scene: Scene, engine: Engine
):
    created = iter(range(100))

    def create() -> requests.Response:
        n = next(created)
        body = okta_create_user(f"new{n}@example.com", f"ext-{n}")
        return scene.scim_call("POST", "/Users", json=body)

    by_name = '/Users?filter=userName eq "pat@example.com"'
    sends: list[tuple[str, Callable[[], requests.Response], int]] = [
        ("SCIM get user", lambda: scene.scim_call("GET", f"/Users/{scene.scim_id}"), 200),
        ("SCIM list users", lambda: scene.scim_call("GET", by_name), 200),
        ("SCIM get group", lambda: scene.scim_call("GET", f"/Groups/{scene.group_id}"), 200),
        ("SCIM list groups", lambda: scene.scim_call("GET", "/Groups"), 200),
        ("SCIM create", create, 201),
        ("admin list users", lambda: scene.call("GET", "/api/v1/users", headers=scene.admin), 200),
        ("IdP event", scene.event, 202),
        ("enrollment page", scene.enroll_page, 200),
        ("SCIM deactivate", scene.deactivate, 200),
    ]
    for name, send, status in sends:
        warm = send()  # the web's pool holds connections that served this kind of request
        assert warm.status_code == status, (name, warm.text)
        terminate_every_backend(engine)
        answered = send()
        assert answered.status_code == status, (name, answered.status_code, answered.text)


# 2. The database refusing connections (as while it restarts), then back.


def test_while_the_database_refuses_connections_every_protocol_answers_503_then_serves(
    scene: Scene, settings: Settings, engine: Engine
):
    sends = [
        (lambda: scene.scim_call("GET", f"/Users/{scene.scim_id}"), assert_busy_scim, 200),
        (lambda: scene.call("GET", "/api/v1/users", headers=scene.admin), assert_busy_problem, 200),
        (scene.event, assert_busy_problem, 202),
        (scene.enroll_page, assert_busy_page, 200),
    ]
    for send, _, status in sends:
        assert send().status_code == status
    before = person_state(engine, scene.person)
    with refusing_connections(settings, engine):
        for send, check, _ in sends:
            check(send())
    for send, _, status in sends:
        answered = send()
        assert answered.status_code == status, answered.text
    assert person_state(engine, scene.person)[:3] == before[:3]


# 1. In the middle of a request: the backend of a write waiting on a lock is terminated.


@pytest.fixture
def maintenance(engine: Engine) -> Iterator[Connection]:
    """A connection to another database of the server, to find and terminate backends."""
    server = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        yield connection
    server.dispose()


def waiting_backend(maintenance: Connection, database: str) -> int | None:
    """The backend of the run's database that waits on a lock, if one does yet."""
    return maintenance.scalar(
        text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock'"),
        {"name": database},
    )


@dataclass
class InFlight:
    thread: threading.Thread
    answer: list[requests.Response]

    def result(self) -> requests.Response:
        self.thread.join(timeout=HANG_GUARD + 30)
        assert self.answer, "the request never answered"
        return self.answer[0]


def send_in_background(send: Callable[[], requests.Response]) -> InFlight:
    answer: list[requests.Response] = []
    thread = threading.Thread(target=lambda: answer.append(send()), daemon=True)
    thread.start()
    return InFlight(thread, answer)


def holding(engine: Engine, statement: str, **params: Any) -> Connection:
    """A connection of the test's own, in a transaction that holds this lock."""
    connection = engine.connect()
    connection.execute(text(statement), params)
    return connection


LOCK_PERSON = "SELECT id FROM users WHERE id = :id FOR UPDATE"
LOCK_INVITATION = "SELECT id FROM invitations WHERE email_key = :email FOR UPDATE"
LOCK_DELIVERIES = "LOCK TABLE received_deliveries IN SHARE MODE"
LOCK_NEW_PEOPLE = "LOCK TABLE users IN SHARE MODE"  # inserts wait, reads do not
LOCK_SCIM_USERS = "LOCK TABLE scim_users IN ACCESS EXCLUSIVE MODE"  # even reads wait
LOCK_MEMBERSHIPS = "LOCK TABLE team_memberships IN EXCLUSIVE MODE"  # writes wait, reads do not
LOCK_KEYS = "LOCK TABLE virtual_api_keys IN SHARE MODE"  # inserts wait, reads do not

# Each request the scene sends, the lock that makes it wait, and how its 503 must look.
EVERY_REQUEST_AND_ITS_LOCK = pytest.mark.parametrize(
    ("request_name", "lock", "check"),
    [
        ("deactivate", LOCK_PERSON, assert_busy_scim),
        ("get_user", LOCK_SCIM_USERS, assert_busy_scim),
        ("create", LOCK_NEW_PEOPLE, assert_busy_scim),
        ("leave_group", LOCK_MEMBERSHIPS, assert_busy_scim),
        ("admin_revoke", LOCK_PERSON, assert_busy_problem),
        ("event", LOCK_DELIVERIES, assert_busy_problem),
        ("okta_event", LOCK_DELIVERIES, assert_busy_problem),
        ("odock_key", LOCK_KEYS, assert_busy_problem),
        ("odock_event", LOCK_DELIVERIES, assert_busy_problem),
        ("enroll", LOCK_INVITATION, assert_busy_page),
    ],
)


@EVERY_REQUEST_AND_ITS_LOCK
def test_a_request_whose_backend_is_terminated_mid_request_is_503_and_keeps_nothing(
    scene: Scene,
    engine: Engine,
    maintenance: Connection,
    request_name: str,
    lock: str,
    check: Callable[[requests.Response], None],
):
    send: Callable[[], requests.Response] = getattr(scene, request_name)
    database = engine.url.database
    assert database
    before = person_state(engine, scene.person)
    holder = holding(engine, lock, id=scene.person.id, email=INVITEE)
    try:
        in_flight = send_in_background(send)
        pid = wait_until(lambda: waiting_backend(maintenance, database), what="a waiting request")
        maintenance.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        answered = in_flight.result()
    finally:
        holder.rollback()
        holder.close()
    check(answered)
    assert person_state(engine, scene.person) == before
    # the same request, sent again, is served at once (no restart, no stale connection)
    again = send()
    assert again.status_code in (200, 201, 202, 204), again.text
    if request_name in ("deactivate", "admin_revoke"):
        assert person_state(engine, scene.person)[0] is UserStatus.REVOKED


# 3. A lock held by another session past the web's lock timeout: a bounded, retryable answer.


@EVERY_REQUEST_AND_ITS_LOCK
def test_a_request_waiting_on_a_lock_held_by_another_session_answers_503_in_bounded_time(
    scene: Scene,
    engine: Engine,
    request_name: str,
    lock: str,
    check: Callable[[requests.Response], None],
):
    send: Callable[[], requests.Response] = getattr(scene, request_name)
    before = person_state(engine, scene.person)
    scene.timeout = HANG_GUARD
    holder = holding(engine, lock, id=scene.person.id, email=INVITEE)
    try:
        in_flight = send_in_background(lambda: _bounded(send))
        answered = in_flight.result()
    finally:
        holder.rollback()
        holder.close()
    # Answered while the lock was still held (released only after the answer), the statement
    # timeout out of reach: the web's lock timeout ended the wait, whatever the load.
    check(answered)
    assert person_state(engine, scene.person) == before
    scene.timeout = 30
    again = send()
    assert again.status_code in (200, 201, 202, 204), again.text


def _bounded(send: Callable[[], requests.Response]) -> requests.Response:
    try:
        return send()
    except requests.Timeout:
        raise AssertionError("the request waited on the lock past its timeout") from None
