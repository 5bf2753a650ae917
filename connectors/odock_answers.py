"""What the status of an answer from Odock means, in both directions: the management plane's
listings odock-sync reads, and the store commands and gateway calls it sends. One rule, so
that a status cannot mean done to one caller and not done to another."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import requests

from connectors.outbound import retry_after_seconds

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


def status_of(response: requests.Response) -> Status:
    """The answer's status and what it means; its body is left unread. A 202 is not done: it
    says the request was accepted to be carried out later (RFC 9110 section 15.3.3), so the
    revocation it carries has not landed. A 3xx is not done either: no redirect is followed
    (it could lead off the configured address). Done and gone are Odock's own answers, in
    JSON: a web server's, proxy's or captive portal's page (a wrong ODOCK_MANAGEMENT_URL or
    GATEWAY_URL, a route not deployed yet) would otherwise end every command as "no such key",
    never sent again, or close a gateway invalidation whose key the gateway still caches."""
    code = response.status_code
    done = 200 <= code < 300 and code != 202
    if done and _says_nothing(response):
        return Status(code, Meaning.DONE, None)
    if done or code in GONE:
        media_type = _media_type(response)
        if media_type not in JSON_TYPES:
            return Status(code, Meaning.NOT_DONE, None, foreign=media_type or "no Content-Type")
        return Status(code, Meaning.DONE if done else Meaning.GONE, None)
    meaning = Meaning.CREDENTIALS if code in CREDENTIALS else Meaning.NOT_DONE
    return Status(code, meaning, retry_after_seconds(response))


def _says_nothing(response: requests.Response) -> bool:
    """A 2xx without a body (204, or Content-Length 0) is no page of anyone's: a portal or web
    server answers with one. The caller decides whether an empty answer is enough (a gateway
    invalidation: yes, as the contract first had it; a store command needs its `applied_at`)."""
    return response.status_code == 204 or response.headers.get("Content-Length") == "0"


def _media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
