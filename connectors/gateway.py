"""Odock's gateway: tell it to forget cached keys so a revoked key stops working now."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.odock_answers import Meaning, status_of
from connectors.outbound import BodyRefused, UrlPolicy, pinned_session, read_bounded

# A key status of a full claim (500 keys) is about 50 KB; an answer is read no further than
# this, and only within the call's timeout.
MAX_ANSWER_BYTES = 1024 * 1024


class GatewayUnavailable(Exception):
    """The gateway did not acknowledge; the call is safe to repeat. `retry_after`: the seconds
    the gateway asked to be left alone (its Retry-After on a 429 or 503), when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def invalidate_keys(
    *, base_url: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> None:
    """Done when the gateway acknowledges in JSON, an object (`{"invalidated": n}`), or with no
    body at all (a 204, as the contract first had it: "2xx once done, the body not read"); a
    page labelled JSON that is not an object is no gateway's acknowledgement."""
    answer = _post(base_url, "/v1/internal/cache/invalidate", secret, key_ids, timeout, policy)
    if not answer:
        return
    try:
        acknowledgement = json.loads(answer)
    except (ValueError, RecursionError):
        acknowledgement = None
    if not isinstance(acknowledgement, dict):
        raise GatewayUnavailable("gateway answered an invalidation without a JSON object")


@dataclass(frozen=True)
class KeyStatus:
    """Whether the gateway would accept a key now, as it said at `checked_at`."""

    key_id: str
    accepted: bool
    checked_at: datetime


def key_status(
    *, base_url: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> list[KeyStatus]:
    answer = _post(base_url, "/v1/internal/keys/status", secret, key_ids, timeout, policy)
    try:
        statuses = [
            KeyStatus(_key_id(item["id"]), _boolean(item["accepted"]), _moment(item["checked_at"]))
            for item in json.loads(answer)["keys"]
        ]
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise GatewayUnavailable("gateway answered an unreadable key status") from exc
    if len({status.key_id for status in statuses}) < len(statuses):
        # Denied once and accepted once: which one holds cannot be told.
        raise GatewayUnavailable("gateway answered an unreadable key status: a key twice")
    return statuses


def _key_id(value: object) -> str:
    """A key id as a UUID's text: anything else (`null`, a number, a name) is no key's status,
    and would end the caller that files the answer under its key."""
    if not isinstance(value, str):
        raise TypeError(f"id is {type(value).__name__}, not a string")
    return str(uuid.UUID(value))


def _boolean(value: object) -> bool:
    """A JSON true or false, nothing else: a `null` (the gateway cannot say) read as false
    would be kept as a signed proof that the gateway denies the key."""
    if not isinstance(value, bool):
        raise TypeError(f"accepted is {type(value).__name__}, not a boolean")
    return value


def _post(
    base_url: str, path: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> bytes:
    """POST the key ids to one of the gateway's internal endpoints; its answer's body if it
    is 2xx. `timeout` bounds each read and the whole body too: a gateway trickling its answer,
    each piece within the read timeout, would otherwise hold the caller past the lease on its
    cut-offs (GATEWAY_TIMEOUT + 2 s), and the reaper would call again beside it."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {"key_ids": key_ids}
    try:
        with (
            pinned_session(policy) as http,
            http.post(
                base_url.rstrip("/") + path,
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            status = status_of(response, deadline=deadline)
            if status.meaning is not Meaning.DONE:
                raise GatewayUnavailable(f"gateway {status}", retry_after=status.retry_after)
            return read_bounded(response, max_bytes=MAX_ANSWER_BYTES, deadline=deadline)
    except BodyRefused as exc:
        raise GatewayUnavailable(f"gateway answered, its body {exc}") from None
    except (requests.RequestException, OSError) as exc:
        raise GatewayUnavailable(f"gateway unreachable: {type(exc).__name__}") from exc


def _moment(value: str) -> datetime:
    """The time in UTC; OverflowError when its UTC form leaves the calendar (year 1 east of
    UTC, year 9999 west of it), which no column stores."""
    moment = datetime.fromisoformat(value)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
