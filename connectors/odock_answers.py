"""What the status of an answer from Odock means, in both directions: the management plane's
listings odock-sync reads, and the store commands and gateway calls it sends. One rule, so
that a status cannot mean done to one caller and not done to another."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import requests

from connectors.outbound import BodyTooLarge, read_bounded, retry_after_seconds

GONE = (404, 410)
CREDENTIALS = (401, 403)
JSON_TYPES = ("application/json", "application/problem+json")


class Meaning(StrEnum):
    DONE = "done"  # 2xx but 202, in JSON: the body says the rest
    GONE = "gone"  # 404, 410: Odock holds no such object
    CREDENTIALS = "credentials refused"  # 401, 403: Odock does not take odock-sync's token
    NOT_DONE = "not done"  # anything else: worth asking again later


@dataclass(frozen=True)
class Status:
    code: int
    meaning: Meaning
    retry_after: float | None  # the seconds Odock asked to be left alone, when it said
    foreign: str | None = None  # the media type of a 2xx, 404 or 410 that is not Odock's JSON

    def __str__(self) -> str:
        asked = "" if self.retry_after is None else f" (Retry-After {self.retry_after:.0f} s)"
        page = "" if self.foreign is None else f", not Odock's JSON ({self.foreign})"
        return f"answered {self.code}{page}{asked}"


def status_of(response: requests.Response, *, deadline: float) -> Status:
    """The answer's status and what it means. A 202 is not done: it says the request was
    accepted to be carried out later (RFC 9110 section 15.3.3), so the revocation it carries
    has not landed. A 3xx is not done either: no redirect is followed (it could lead off the
    configured address), nor its body read. Done and gone are Odock's own answers, in JSON, or
    a 2xx without a body: a web server's, proxy's or captive portal's page (a wrong
    ODOCK_MANAGEMENT_URL or GATEWAY_URL, a route not deployed yet) would otherwise end every
    command as "no such key", never sent again, or close a gateway invalidation whose key the
    gateway still caches. The body is left unread but for a 2xx not in JSON and of no length
    given (chunked): its first read, by `deadline` (a time.monotonic()), tells whether it has
    any (outbound.BodyTooSlow when it does not come)."""
    code = response.status_code
    done = 200 <= code < 300 and code != 202
    if done or code in GONE:
        media_type = _media_type(response)
        if media_type in JSON_TYPES:
            return Status(code, Meaning.DONE if done else Meaning.GONE, None)
        if done and _says_nothing(response, deadline):
            return Status(code, Meaning.DONE, None)
        return Status(code, Meaning.NOT_DONE, None, foreign=media_type or "no Content-Type")
    meaning = Meaning.CREDENTIALS if code in CREDENTIALS else Meaning.NOT_DONE
    return Status(code, meaning, retry_after_seconds(response))


def _says_nothing(response: requests.Response, deadline: float) -> bool:
    """A 2xx without a body (204, a Content-Length of 0, or a chunked body that ends at once,
    as Go's net/http and many frameworks write an empty answer) is no page of anyone's: a
    portal or web server answers with one. The caller decides whether an empty answer is
    enough (a gateway invalidation: yes, as the contract first had it; a store command needs
    its `applied_at`)."""
    length = response.headers.get("Content-Length")
    if response.status_code == 204 or length == "0":
        return True
    if length is not None:
        return False
    try:
        return read_bounded(response, max_bytes=0, deadline=deadline) == b""
    except BodyTooLarge:  # its first byte: a page
        return False


def _media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
