"""The stand-in's management plane: key commands in, paged listings out (docs/odock.md)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.odock.store import KeyStore, UnknownKey

MAX_PAGE = 1000


@dataclass(frozen=True)
class Answer:
    """What the store answers to a command for one key (or budget), instead of its own answer:
    the status, JSON body and headers, after applying the command when `apply`."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    apply: bool = False


@dataclass
class StoreFaults:
    """How the store misbehaves: `fail` answers 500; `hang` holds each command until
    `release` is set (or `hang_limit` passes) and then applies it; `hang_after_apply` applies
    first and then holds the answer (the caller times out, the store has changed anyway);
    `answers` gives the commands for a key (or budget) id an answer of the test's choosing."""

    fail: bool = False
    hang: bool = False
    hang_after_apply: bool = False
    hang_limit: float = 30.0
    release: threading.Event = field(default_factory=threading.Event)
    answers: dict[str, Answer] = field(default_factory=dict)
    # Listings paged by offset, this many items a page (the cursor is the offset), as many
    # stores page: an object deleted between two page reads shifts the next item out of sight.
    offset_page: int | None = None
    # Called once, after the first page of a listing is read and before it is answered.
    after_first_page: Callable[[], None] | None = None

    def heal(self) -> None:
        self.fail = self.hang = self.hang_after_apply = False
        self.answers.clear()
        self.offset_page = self.after_first_page = None
        self.release.set()


@dataclass(frozen=True)
class CommandSeen:
    id: str
    key_id: str
    type: str
    at: float  # time.time() when it arrived
    status: int


@dataclass
class ManagementLog:
    lock: threading.Lock = field(default_factory=threading.Lock)
    commands: list[CommandSeen] = field(default_factory=list)  # answered
    arrived: list[str] = field(default_factory=list)  # ids of signed commands, on arrival

    def add(self, seen: CommandSeen) -> None:
        with self.lock:
            self.commands.append(seen)

    def arrival(self, command_id: str) -> None:
        with self.lock:
            self.arrived.append(command_id)

    def for_key(self, key_id: uuid.UUID | str) -> list[CommandSeen]:
        with self.lock:
            return [c for c in self.commands if c.key_id == str(key_id)]


def create_management_app(
    store: KeyStore, *, secret: str, token: str, faults: StoreFaults, log: ManagementLog
) -> Flask:
    app = Flask("odock-stand-in-management")

    @app.post("/v1/sync/commands")
    def command() -> Response | tuple[Response, int]:
        raw = request.get_data()
        try:
            body = Webhook(secret).verify(raw.decode(), dict(request.headers))
        except (WebhookVerificationError, ValueError, UnicodeDecodeError):
            return _problem(401, "the command is not signed with the command secret")
        if not isinstance(body, dict) or body.get("id") != request.headers.get("webhook-id"):
            return _problem(422, "the body's id must be the webhook-id")
        log.arrival(str(body["id"]))
        status, answer = _answer_command(store, faults, body)
        log.add(
            CommandSeen(
                body["id"],
                str(body.get("key_id") or body.get("budget_id")),
                str(body.get("type")),
                time.time(),
                status,
            )
        )
        return answer, status

    @app.get("/v1/sync/<any(keys, budgets, quotas):kind>")
    def listing(kind: str) -> Response | tuple[Response, int]:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return _problem(401, "a bearer token is required")
        try:
            organisation_id = uuid.UUID(request.args["organisation_id"])
            limit = min(int(request.args.get("limit", MAX_PAGE)), MAX_PAGE)
            cursor = request.args.get("cursor") or None
            if faults.offset_page is not None:
                offset, limit = int(cursor or 0), min(limit, faults.offset_page)
                items, next_cursor = store.page_by_offset(kind, organisation_id, offset, limit)
            else:
                items, next_cursor = store.page(kind, organisation_id, cursor, max(limit, 1))
        except (KeyError, ValueError):
            return _problem(400, "organisation_id, cursor and limit must be well formed")
        between, faults.after_first_page = faults.after_first_page, None
        if between is not None:
            between()
        return jsonify({"items": items, "next_cursor": next_cursor})

    return app


def _answer_command(
    store: KeyStore, faults: StoreFaults, body: dict[str, Any]
) -> tuple[int, Response]:
    if faults.fail:
        return 500, _problem(500, "the store is down")[0]
    chosen = faults.answers.get(str(body.get("key_id") or body.get("budget_id")))
    if chosen is not None:
        if chosen.apply:
            store.apply_command(body)
        answer = Response(json.dumps(chosen.body), content_type="application/json")
        answer.headers.update(chosen.headers)
        return chosen.status, answer
    if faults.hang:
        faults.release.wait(faults.hang_limit)
    try:
        applied_at = store.apply_command(body)
    except UnknownKey:
        return 404, _problem(404, "no such key")[0]
    except (KeyError, ValueError):
        return 422, _problem(422, "not a key command")[0]
    if faults.hang_after_apply:
        faults.release.wait(faults.hang_limit)
    return 200, jsonify({"id": body["id"], "applied_at": applied_at.isoformat()})


def _problem(status: int, detail: str) -> tuple[Response, int]:
    title = {401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Content"}
    response = jsonify(
        {
            "type": "about:blank",
            "title": title.get(status, "Internal Server Error"),
            "status": status,
            "detail": detail,
        }
    )
    response.content_type = "application/problem+json"
    return response, status
