"""Odock's management plane, outbound: signed key commands to the key store."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.odock_answers import Meaning, status_of
from connectors.outbound import BodyRefused, UrlPolicy, pinned_session, read_bounded
from connectors.signed_webhooks import sign

COMMANDS_PATH = "/v1/sync/commands"
# An acknowledgement is {"applied_at": ...}: a 2xx answer is read no further than this, and
# only within the command's timeout, like a listing page.
MAX_ANSWER_BYTES = 64 * 1024


class StoreUnavailable(Exception):
    """The store did not acknowledge the command; sending it again is safe. `retry_after`:
    the seconds the store asked to be left alone (its Retry-After), when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KeyUnknown(Exception):
    """The store answered 404 or 410: it holds no such key (deleted there); sending the
    command again would get the same answer."""


def send_store_command(
    *,
    base_url: str,
    token: str,
    secret: str,
    body: dict[str, Any],
    timeout: float,
    policy: UrlPolicy,
) -> datetime:
    """POST one command; the store's `applied_at` when it acknowledged, KeyUnknown when it
    has no such key, else StoreUnavailable."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **sign(secret, msg_id=body["id"], body=raw)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + timeout  # the whole answer, however slowly it comes
    try:
        with (
            pinned_session(policy) as http,
            http.post(
                base_url.rstrip("/") + COMMANDS_PATH,
                data=raw,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            status = status_of(response, deadline=deadline)
            if status.meaning is Meaning.GONE:
                raise KeyUnknown(f"store {status}: no such key")
            if status.meaning is not Meaning.DONE:
                raise StoreUnavailable(f"store {status}", retry_after=status.retry_after)
            answer = read_bounded(response, max_bytes=MAX_ANSWER_BYTES, deadline=deadline)
    except BodyRefused as exc:
        raise StoreUnavailable(f"store answered {response.status_code}, its body {exc}") from None
    except (requests.RequestException, OSError) as exc:
        raise StoreUnavailable(f"store unreachable: {type(exc).__name__}") from exc
    return _applied_at(answer, command_id=body["id"])


def _applied_at(answer: bytes, *, command_id: str) -> datetime:
    """The acknowledgement's time, in UTC. One without a zone, or beyond what UTC can hold, is
    no acknowledgement (as one that is missing): it could not be stored, and recording the
    round's answers would fail for every key of the round. Nor is one naming another command
    by its `id`: it says nothing of this one."""
    try:
        acknowledgement = json.loads(answer)
        applied_at = datetime.fromisoformat(acknowledgement["applied_at"])
        if applied_at.tzinfo is None:
            raise ValueError("applied_at has no zone")
        applied_at = applied_at.astimezone(UTC)
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise StoreUnavailable("store answered without a readable applied_at") from exc
    if not _same_id(acknowledgement.get("id", command_id), command_id):
        raise StoreUnavailable("store acknowledged another command")
    return applied_at


def _same_id(given: object, command_id: str) -> bool:
    try:
        return uuid.UUID(str(given)) == uuid.UUID(command_id)
    except ValueError:
        return False
