"""Reading the management plane's paged list endpoints (GET /v1/sync/{keys|budgets|quotas}).

A page that does not answer 200 with {"items": [...], "next_cursor": ...}, or is not read whole
within the timeout of its request, ends the listing as incomplete: the caller then deletes
nothing. The next page is fetched while the caller works
on the current one.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests

from connectors.odock_answers import Meaning, status_of
from connectors.outbound import (
    BodyTooLarge,
    BodyTooSlow,
    NotAnsweredInTime,
    UrlPolicy,
    pinned_session,
    read_bounded,
)

PAGE_LIMIT = 1000
COLLECTIONS = {"key": "keys", "budget": "budgets", "quota": "quotas"}
# An object is at most 64 KiB as pushed (docs/odock.md): a page of `limit` items is read up to
# `limit` times that, and refused beyond, before it is held in memory whole.
MAX_ITEM_BYTES = 64 * 1024


class ListingFailed(Exception):
    """The listing could not be read to its end; `reason` is safe to show. `retry_after`: the
    seconds the management plane asked to be left alone (its Retry-After), when it said;
    `credentials_refused`: it does not take the token (asking again will not help)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, credentials_refused: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.credentials_refused = credentials_refused


def list_pages(
    *,
    base_url: str,
    token: str,
    kind: str,
    organisation_id: str,
    timeout: float,
    policy: UrlPolicy,
    limit: int = PAGE_LIMIT,
    within: float | None = None,
) -> Iterator[list[Any]]:
    """The items of each page in turn; raises ListingFailed on the first page that fails, and
    once the listing has taken `within` seconds: a management plane answering a fresh cursor
    every time (a loop no repeated cursor shows) would otherwise be listed without end."""
    url = f"{base_url.rstrip('/')}/v1/sync/{COLLECTIONS[kind]}"
    seen_cursors: set[str] = set()
    cursor: str | None = None
    deadline = None if within is None else time.monotonic() + within
    with pinned_session(policy) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        for number in range(1, 10**9):
            if deadline is not None and time.monotonic() > deadline:
                raise ListingFailed(
                    f"the listing did not end within {within:g} s ({number - 1} pages)"
                )
            params = {"organisation_id": organisation_id, "limit": str(limit)}
            if cursor is not None:
                params["cursor"] = cursor
            items, cursor = _page(http, url, params, timeout, number, limit)
            yield items
            if cursor is None:
                return
            if cursor in seen_cursors:
                raise ListingFailed(f"page {number} repeats an earlier cursor")
            seen_cursors.add(cursor)


def _page(
    http: requests.Session,
    url: str,
    params: dict[str, str],
    timeout: float,
    number: int,
    limit: int,
) -> tuple[list[Any], str | None]:
    deadline = time.monotonic() + timeout  # the whole page, however slowly it trickles in
    try:
        with http.get(
            url, params=params, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            status = status_of(response, deadline=deadline)
            if status.meaning is not Meaning.DONE:
                raise ListingFailed(
                    f"page {number} {status}",
                    retry_after=status.retry_after,
                    credentials_refused=status.meaning is Meaning.CREDENTIALS,
                )
            raw = read_bounded(response, max_bytes=limit * MAX_ITEM_BYTES, deadline=deadline)
    except BodyTooLarge as exc:
        raise ListingFailed(f"page {number} is {exc}") from None
    except (BodyTooSlow, NotAnsweredInTime):
        raise ListingFailed(f"page {number} was not read whole within {timeout:g} s") from None
    except (requests.RequestException, OSError) as exc:
        raise ListingFailed(f"page {number}: {type(exc).__name__}") from exc
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        raise ListingFailed(f"page {number} is not JSON") from None
    items = body.get("items") if isinstance(body, dict) else None
    cursor = body.get("next_cursor") if isinstance(body, dict) else None
    if not isinstance(items, list) or not (cursor is None or isinstance(cursor, str)):
        raise ListingFailed(f'page {number} is not {{"items": [...], "next_cursor": ...}}')
    if len(items) > limit:
        raise ListingFailed(f"page {number} holds {len(items)} items, more than the {limit} asked")
    return items, cursor or None


def prefetched(pages: Iterator[list[Any]], depth: int = 4) -> Iterator[list[Any]]:
    """The same pages, read ahead by a thread (at most `depth` waiting)."""
    waiting: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(what: str, value: Any) -> bool:
        """Give the consumer an item; False once it has stopped listening (then nothing
        would ever take it: a blocking put would hold this thread and its connection)."""
        while not stop.is_set():
            try:
                waiting.put((what, value), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not hand("page", page):
                    return
            hand("end", None)
        except Exception as exc:  # handed to the reader, who raises it
            hand("error", exc)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # the listing's HTTP session, at once rather than when collected

    reader = threading.Thread(target=read, name="odock-listing", daemon=True)
    reader.start()
    try:
        while True:
            what, value = waiting.get()
            if what == "end":
                return
            if what == "error":
                raise value
            yield value
    finally:
        stop.set()
