"""Odd answers from Odock, in both directions, from a real loopback server: the management
plane's listings, its key store and the gateway. An answer that does not say the work is done
is a failed call (connectors/odock_answers.py, one rule for all three), never taken for done,
and never one that holds the caller past its timeout."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug import Request, Response

from connectors import gateway
from connectors import odock as odock_connector
from connectors.odock_listing import ListingFailed, list_pages
from connectors.outbound import UrlPolicy
from tests.support.raw_answer import raw_answer
from tests.support.trickled_body import TrickledBody

LOOPBACK = UrlPolicy(allow_loopback=True)
TIMEOUT = 5.0
SECRET = "whsec_" + "A" * 32
FAILED = (odock_connector.StoreUnavailable, gateway.GatewayUnavailable, ListingFailed)


def send_revoke(base_url: str) -> datetime:
    command = {"id": str(uuid.uuid4()), "type": "key.revoke", "key_id": str(uuid.uuid4())}
    return odock_connector.send_store_command(
        base_url=base_url, token="t", secret=SECRET, body=command, timeout=TIMEOUT, policy=LOOPBACK
    )


def invalidate(base_url: str) -> None:
    gateway.invalidate_keys(
        base_url=base_url, secret="s", key_ids=[str(uuid.uuid4())], timeout=TIMEOUT, policy=LOOPBACK
    )


def key_status(base_url: str) -> list[gateway.KeyStatus]:
    return gateway.key_status(
        base_url=base_url, secret="s", key_ids=[str(uuid.uuid4())], timeout=TIMEOUT, policy=LOOPBACK
    )


def list_keys(base_url: str) -> list[Any]:
    pages = list_pages(
        base_url=base_url,
        token="t",
        kind="key",
        organisation_id="o",
        timeout=TIMEOUT,
        policy=LOOPBACK,
    )
    return [item for page in pages for item in page]


CALLS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "store command": ("/v1/sync/commands", send_revoke),
    "invalidation": ("/v1/internal/cache/invalidate", invalidate),
    "key status": ("/v1/internal/keys/status", key_status),
    "listing": ("/v1/sync/keys", list_keys),
}


class TrickledRedirect(TrickledBody):
    """A redirect to elsewhere on the same server, its body trickled until released."""

    def __init__(self, location: str) -> None:
        super().__init__(status=307, content_type="text/html")
        self.location = location

    def __call__(self, request: Request) -> Response:
        return Response(self._body(), status=307, headers={"Location": self.location})


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_redirect_whose_body_never_ends_is_a_failed_call_at_once(httpserver, call):
    """requests read a redirect's whole body to look for its target, even when told not to
    follow it, and after the call's deadline stopped applying: a 3xx with a Location and a body
    trickled (here until released, a minute at most) held the caller until it ended, past the
    lease on the cut-offs, and a body without end was read into memory whole."""
    path, make_call = CALLS[call]
    redirect = TrickledRedirect(httpserver.url_for("/elsewhere"))
    httpserver.expect_request(path).respond_with_handler(redirect)
    httpserver.expect_request("/elsewhere").respond_with_data("followed")
    try:
        with pytest.raises(FAILED) as raised:
            make_call(httpserver.url_for("/"))
        assert not redirect.ended.is_set(), "the caller waited for the redirect's body"
    finally:
        redirect.release()
    assert "TooManyRedirects" in str(raised.value)
    assert [request.path for request, _ in httpserver.log] == [path]  # never followed


@pytest.mark.parametrize("call", ["store command", "invalidation"])
def test_a_202_accepted_for_later_is_not_done(httpserver, call):
    """202 says the request was taken to be carried out later (RFC 9110 section 15.3.3): the
    key may still be enabled in the store or cached at the gateway. Before, any 2xx was taken
    for done: the command acknowledged (with the applied_at the body named), the cut-off closed."""
    path, make_call = CALLS[call]
    answer = {"applied_at": datetime.now(UTC).isoformat()}
    httpserver.expect_request(path).respond_with_json(answer, status=202)

    with pytest.raises(FAILED) as raised:
        make_call(httpserver.url_for("/"))
    assert "answered 202" in str(raised.value)


@pytest.mark.parametrize(
    "keys",
    [
        [{"id": "key-1", "accepted": False, "checked_at": "2026-12-06T10:00:00Z"}],
        [{"id": None, "accepted": False, "checked_at": "2026-12-06T10:00:00Z"}],
        [{"id": 7, "accepted": False, "checked_at": "2026-12-06T10:00:00Z"}],
        [{"id": "K", "accepted": False, "checked_at": "9999-12-31T23:59:59-14:00"}],
        [{"id": "K", "accepted": False, "checked_at": "0001-01-01T00:00:00+14:00"}],
        [
            {"id": "K", "accepted": False, "checked_at": "2026-12-06T10:00:00Z"},
            {"id": "K", "accepted": True, "checked_at": "2026-12-06T10:00:00Z"},
        ],
    ],
    ids=["not a uuid", "null id", "number id", "past 9999 in UTC", "before year 1 in UTC", "twice"],
)
def test_a_key_status_that_cannot_be_filed_under_its_key_is_a_failed_call(httpserver, keys):
    """Each was returned as read: the proof task then died on an id that is no UUID, or on a
    time no column stores (the reaper redrove it into the same death until the deadline), and
    of a key answered denied and accepted the last was kept as the proof."""
    key = str(uuid.uuid4())
    answer = [{**item, "id": key if item["id"] == "K" else item["id"]} for item in keys]
    httpserver.expect_request("/v1/internal/keys/status").respond_with_json({"keys": answer})

    with pytest.raises(gateway.GatewayUnavailable, match="unreadable key status"):
        key_status(httpserver.url_for("/"))


def test_a_store_acknowledging_another_command_has_not_acknowledged_this_one(httpserver):
    """The acknowledgement names its command (`id`, as the document's answer has it): one
    naming another (a proxy's cached answer, a store mixing up its replies) was taken for this
    command's, and the key invalidated at the gateway while the store may still hold it."""
    another = {"id": str(uuid.uuid4()), "applied_at": datetime.now(UTC).isoformat()}
    httpserver.expect_request("/v1/sync/commands").respond_with_json(another)

    with pytest.raises(odock_connector.StoreUnavailable, match="another command"):
        send_revoke(httpserver.url_for("/"))


@pytest.mark.parametrize(("status", "content_type"), [(404, "text/html"), (410, "text/plain")])
def test_a_404_that_is_not_the_stores_own_answer_does_not_end_the_command(
    httpserver, status, content_type
):
    """A 404 ends a command for good ("no such key"): one from a web server or proxy in front
    of the store (its HTML page for a wrong ODOCK_MANAGEMENT_URL or a route not deployed) ended
    every revocation's command that way, none sent again once the address was fixed. Only a
    404 or 410 in JSON is the store's; any other is a failed attempt, sent again."""
    httpserver.expect_request("/v1/sync/commands").respond_with_response(
        Response("<h1>Not Found</h1>", status=status, content_type=content_type)
    )

    with pytest.raises(odock_connector.StoreUnavailable, match=f"answered {status}"):
        send_revoke(httpserver.url_for("/"))


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_page_answered_200_is_not_odocks_answer(httpserver, call):
    """A captive portal or a web server at a wrong ODOCK_MANAGEMENT_URL or GATEWAY_URL answers
    200 with its HTML page: the gateway's invalidation, whose body was not read, took it for
    done. Done is Odock's own answer in JSON, for every call (the others failed only later, on
    the body)."""
    path, make_call = CALLS[call]
    httpserver.expect_request(path).respond_with_response(
        Response("<h1>Welcome</h1>", status=200, content_type="text/html")
    )

    with pytest.raises(FAILED, match=r"answered 200, not Odock's JSON \(text/html\)"):
        make_call(httpserver.url_for("/"))


@pytest.mark.parametrize("call", sorted(set(CALLS) - {"invalidation"}))
def test_an_empty_2xx_is_done_only_where_nothing_more_is_needed(httpserver, call):
    """An answer with no body is nobody's page, so the gateway's invalidation takes a 204 as
    done (as the contract first had it), but a store command still needs its applied_at, a
    key status its keys and a listing its page: for them it is a failed call."""
    path, make_call = CALLS[call]
    httpserver.expect_request(path).respond_with_response(Response(status=204))

    with pytest.raises(FAILED):
        make_call(httpserver.url_for("/"))


def chunked_200(body: bytes, content_type: str | None = None) -> bytes:
    """A 200 as an HTTP/1.1 server without the body's length writes it (Go's net/http once a
    handler flushed, many frameworks): chunked, `body` in one chunk, then the last chunk."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    if content_type is not None:
        head += b"Content-Type: %s\r\n" % content_type.encode()
    chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
    return head + b"\r\n" + chunk + b"0\r\n\r\n"


@pytest.mark.parametrize("content_type", [None, "text/plain"], ids=["no type", "text/plain"])
def test_a_chunked_200_with_an_empty_body_is_an_invalidation(content_type):
    """A gateway that answers 200 chunked with nothing in it has answered without a body, as
    one sending Content-Length 0 does. Before, only a 204 or a Content-Length of 0 was taken
    for no body: this answer was "answered 200, not Odock's JSON (no Content-Type)", a failed
    attempt, so a working gateway's invalidations were sent again for ever and alarmed."""
    with raw_answer(chunked_200(b"", content_type)) as url:
        invalidate(url)


@pytest.mark.parametrize("call", sorted(set(CALLS) - {"invalidation"}))
def test_a_chunked_200_with_an_empty_body_is_no_more_than_an_empty_answer(call):
    """For the calls that need a body it stays a failed call, as an empty 204 is: for the body
    it lacks (before: as a page not in JSON, which it is not)."""
    _path, make_call = CALLS[call]
    with raw_answer(chunked_200(b"")) as url, pytest.raises(FAILED) as raised:
        make_call(url)
    assert "not Odock's JSON" not in str(raised.value)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_chunked_page_answered_200_without_a_type_is_not_odocks_answer(call):
    """Guard: reading a chunked body to tell whether it is empty does not make a page Odock's."""
    _path, make_call = CALLS[call]
    with (
        raw_answer(chunked_200(b"<h1>Welcome</h1>")) as url,
        pytest.raises(FAILED, match=r"answered 200, not Odock's JSON \(no Content-Type\)"),
    ):
        make_call(url)
