"""Shared arrangements for the review and notification tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle, reviews
from models.actor import Actor
from models.entities import Organisation, RevocationReview, Team, User, VirtualApiKey
from models.enums import Role, Source, TeamRole
from tests.support import factories as f

REVIEWER = Actor(Source.SYSTEM, "reviews-test")


@dataclass
class Leaver:
    org: Organisation
    admin: User
    person: User
    manager_a: User
    team_a: Team
    team_b: Team
    key_a: VirtualApiKey
    key_b: VirtualApiKey
    team_key: VirtualApiKey
    other_key: VirtualApiKey


def build_leaver(session: Session) -> Leaver:
    """A person who owns keys in two teams, created a team key, and is team B's only manager."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    person = f.make_user(session, org, email=f"leaver-{org.slug}@example.com")
    manager_a = f.make_user(session, org, role=Role.MANAGER, email=f"mgr-{org.slug}@example.com")
    bystander = f.make_user(session, org)
    team_a = f.make_team(session, org, "Team A")
    team_b = f.make_team(session, org, "Team B")
    f.add_member(session, team_a, person)
    f.add_member(session, team_a, manager_a, TeamRole.MANAGER)
    f.add_member(session, team_b, person, TeamRole.MANAGER)
    key_a = f.make_key(session, org, owner=person)
    key_a.owner_team_id = team_a.id
    key_b = f.make_key(session, org, owner=person)
    key_b.owner_team_id = team_b.id
    team_key = f.make_key(session, org, team=team_a, created_by=person)
    other_key = f.make_key(session, org, owner=bystander)
    f.make_budget(session, org, person)
    f.make_quota(session, org, person)
    session.flush()
    return Leaver(org, admin, person, manager_a, team_a, team_b, key_a, key_b, team_key, other_key)


def revoke_and_review(session: Session, person: User) -> RevocationReview:
    revocation = lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)
    assert review is not None
    return review


def findings_by_kind(review: RevocationReview) -> dict[str, list]:
    result: dict[str, list] = {}
    for finding in review.findings:
        result.setdefault(finding.kind, []).append(finding)
    return result


@pytest.fixture
def leaver(session: Session) -> Leaver:
    built = build_leaver(session)
    session.commit()
    return built


def outbox_tasks(session: Session) -> list[tuple[str, dict]]:
    from models.entities import OutboxMessage

    return [
        (m.task, m.kwargs)
        for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    ]


def dispatched(session: Session) -> list[dict]:
    """The notifications queued so far (the kwargs of each dispatch task), in order."""
    return [kwargs for task, kwargs in outbox_tasks(session) if task == "notifications.dispatch"]


# --- loopback HTTP receivers for notification hooks ---------------------------------------

import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from pytest_httpserver import HTTPServer  # noqa: E402
from werkzeug import Request, Response  # noqa: E402


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class HookReceiver:
    """Records every POST under /hooks/<name>; each name answers as scripted (fail N first)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.failures: dict[str, int] = {}
        self.always_fail: set[str] = set()
        self.asking: dict[str, tuple[int, str]] = {}  # name -> (status, Retry-After) when failing

    def url(self, name: str) -> str:
        return self.server.url_for(f"/hooks/{name}")

    def fail_first(self, name: str, times: int) -> None:
        self.failures[name] = times

    def ask_to_wait(self, name: str, times: int, *, status: int, retry_after: str) -> None:
        """Fail the next `times` requests with `status` and this Retry-After (shedding load)."""
        self.failures[name] = times
        self.asking[name] = (status, retry_after)

    def handle(self, request: Request) -> Response:
        name = request.path.removeprefix("/hooks/")
        with self.lock:
            key = f"{name}:{request.headers.get('webhook-id', '')}"
            remaining = self.failures.get(key, self.failures.get(name, 0))
            failing = name in self.always_fail or remaining > 0
            if remaining > 0:
                self.failures[key] = remaining - 1
            status, retry_after = self.asking.get(name, (503, "")) if failing else (200, "")
            self.received.append(
                Received(request.path, dict(request.headers), request.get_data(), status)
            )
        headers = {"Retry-After": retry_after} if retry_after else {}
        return Response("no" if failing else "ok", status=status, headers=headers)

    def at(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == f"/hooks/{name}"]

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.failures.clear()
            self.always_fail.clear()
            self.asking.clear()


@pytest.fixture(scope="session")
def hook_server() -> Iterator[HookReceiver]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    receiver = HookReceiver(server)
    server.expect_request(re.compile(r"^/hooks/.+"), method="POST").respond_with_handler(
        receiver.handle
    )
    yield receiver
    server.clear()
    server.stop()


@pytest.fixture
def hooks(hook_server: HookReceiver) -> HookReceiver:
    hook_server.reset()
    return hook_server


class GatewayRecorder:
    """Answers the gateway's cache-invalidation endpoint; can be down for the first N calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.down_for = 0
        self.down_for_keys: set[str] = set()

    def handle(self, request: Request) -> Response:
        with self.lock:
            body = json.loads(request.data)
            # only calls for the keys under test fail (stale calls from other tests may arrive)
            failing = self.down_for > 0 and bool(set(body["key_ids"]) & self.down_for_keys)
            self.down_for -= 1 if failing else 0
            self.calls.append(
                {"auth": request.headers.get("Authorization"), "body": body, "ok": not failing}
            )
        if failing:
            return Response("down", status=503)
        return Response("{}", status=200, content_type="application/json")

    def keys_for(self, key_ids: set[str], *, ok_only: bool = True) -> list[set[str]]:
        """The key sets of the calls that touched these keys (not other tests' calls)."""
        with self.lock:
            return [
                set(c["body"]["key_ids"])
                for c in self.calls
                if (c["ok"] or not ok_only) and set(c["body"]["key_ids"]) & key_ids
            ]


@pytest.fixture
def gateway(httpserver) -> GatewayRecorder:
    recorder = GatewayRecorder()
    httpserver.expect_request(
        "/gateway/v1/internal/cache/invalidate", method="POST"
    ).respond_with_handler(recorder.handle)
    return recorder
