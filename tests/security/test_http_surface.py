"""Hostile requests below the routes: bytes of the request line as a server or proxy may pass
them to the app, and the framing the real web process (gunicorn with the buffering worker)
reads before the app sees a request. Each is refused with a 4xx in the protocol's format of
its path, and changes nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from connectors import signed_webhooks
from models.actions import event_hooks
from models.enums import Role
from models.settings import Settings
from tests.support import factories as f
from tests.support.served import WebProcess as Web
from tests.support.served import web_as_served
from tests.support.state import database_state
from tests.support.streamed_body import ENDLESS, StreamedBody, chunked

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def credentials(session: Session) -> dict[str, dict[str, str]]:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    session.flush()
    headers = {
        "admin": {"Authorization": f"Bearer {f.admin_token(session, org, admin)}"},
        "scim": {"Authorization": f"Bearer {f.scim_token(session, org)}"},
        "public": {},
    }
    session.commit()
    return headers


def assert_format(path: str, answer: Any, allowed: int = 0) -> None:
    """A 4xx (or the `allowed` 5xx) in the format of the protocol the path speaks, without a
    traceback."""
    text = answer.get_data(as_text=True)
    assert 400 <= answer.status_code < 500 or answer.status_code == allowed, text[:300]
    assert "Traceback" not in text
    if path.startswith("/scim/v2"):
        assert answer.mimetype == "application/scim+json", answer.mimetype
        body = json.loads(text)
        assert body["schemas"] == [SCIM_ERROR] and body["status"] == str(answer.status_code)
    elif path.startswith(("/console", "/enroll", "/reviews")):
        assert answer.mimetype == "text/html", answer.mimetype
    else:
        assert answer.mimetype == "application/problem+json", answer.mimetype
        assert json.loads(text)["status"] == answer.status_code


# A query string as WSGI carries it: each byte as one latin-1 character. "\xe9" is the byte
# 0xE9 sent raw, not percent-encoded: latin-1 "é", never UTF-8.
RAW_QUERIES = ["q=\xe9", "code=x&state=caf\xe9", "\xff=1", "filter=\xc3"]


@pytest.mark.parametrize("query", RAW_QUERIES)
@pytest.mark.parametrize(
    "protocol, path",
    [
        ("public", "/healthz"),
        ("admin", "/api/v1/users"),
        ("scim", "/scim/v2/Users"),
        ("public", "/console/sign-in"),
        ("public", "/console/oidc/callback"),
        ("public", "/hooks/okta/nobody"),
    ],
)
def test_a_query_string_that_is_not_utf8_is_a_400_in_the_protocols_format(
    client: FlaskClient, session: Session, sessions: Any, protocol: str, path: str, query: str
) -> None:
    """werkzeug decodes the raw query string strictly before parsing it: a byte that is not
    UTF-8 raised UnicodeDecodeError in the shared query guard, a 500 on every route.
    gunicorn refuses such a request line itself; a front that forwards it does not."""
    headers = credentials(session)[protocol]
    before = database_state(sessions)
    answer = client.get(path, headers=headers, environ_overrides={"QUERY_STRING": query})
    assert_format(path, answer)
    assert answer.status_code == 400
    assert "not valid UTF-8" in answer.get_data(as_text=True)
    assert database_state(sessions) == before


GROUP = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Zipped"}
COMPRESSED_IN_TRANSFER = [
    ("admin", "/api/v1/teams", "application/json", {"name": "Zipped"}),
    ("scim", "/scim/v2/Groups", "application/scim+json", GROUP),
    ("public", "/console/sign-in", "application/x-www-form-urlencoded", None),
]


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked", "chunked, gzip"])
@pytest.mark.parametrize("protocol, path, content_type, document", COMPRESSED_IN_TRANSFER)
def test_a_body_compressed_in_transfer_is_refused_not_read_as_is(
    client: FlaskClient,
    session: Session,
    sessions: Any,
    protocol: str,
    path: str,
    content_type: str,
    document: Any,
    coding: str,
) -> None:
    """`Transfer-Encoding: gzip, chunked`: gunicorn takes the chunks off and leaves the gzip
    coding to the app, which read the bytes as they came (a body that was not compressed
    after all created the team). Refused as a compressed Content-Encoding is, 501 by RFC
    9112 section 6.1 (gunicorn's answer to a coding it does not know)."""
    headers = {**credentials(session)[protocol], "Transfer-Encoding": coding}
    body = json.dumps(document).encode() if document else b"token=x&csrf=y"
    before = database_state(sessions)
    answer = client.post(path, data=body, headers=headers, content_type=content_type)
    assert answer.status_code == 501, answer.get_data(as_text=True)[:300]
    assert_format(path, answer, allowed=501)
    assert database_state(sessions) == before


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    "protocol, path, content_type, document",
    [
        ("admin", "/api/v1/teams", "application/json", {"name": "Marked"}),
        ("scim", "/scim/v2/Groups", "application/scim+json", {**GROUP, "displayName": "Marked"}),
    ],
)
def test_a_json_body_after_a_utf8_byte_order_mark_is_read(
    client: FlaskClient,
    session: Session,
    protocol: str,
    path: str,
    content_type: str,
    document: Any,
) -> None:
    """RFC 8259 section 8.1: a parser MAY ignore a leading BOM, and .NET's UTF-8 writers
    add one. It was a 400 'Expecting value at position 0', which did not say why. The IdP
    receivers: tests/events/test_receiver.py."""
    headers = credentials(session)[protocol]
    body = BOM + json.dumps(document).encode()
    answer = client.post(path, data=body, headers=headers, content_type=content_type)
    assert answer.status_code == 201, answer.get_data(as_text=True)[:300]
    listed = client.get(path, headers=headers).get_data(as_text=True)
    assert "Marked" in listed


@pytest.mark.parametrize(
    "protocol, path, content_type, body",
    [
        ("admin", "/api/v1/teams", "application/json", b'{"name": "Shown", "name": "Kept"}'),
        (
            "scim",
            "/scim/v2/Groups",
            "application/scim+json",
            b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], '
            b'"displayName": "Shown", "displayName": "Kept"}',
        ),
    ],
)
def test_a_json_body_naming_a_member_twice_is_refused_and_changes_nothing(
    client: FlaskClient,
    session: Session,
    sessions: Any,
    protocol: str,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    """Python's decoder kept the last of the two ("Kept" was created, 201) where a proxy or
    filter in front may read the first: read one way by one and another by the other, as a
    query parameter given twice would be (refused). The IdP receivers and the Odock bridge:
    tests/support/hostile.py name_given_twice, tests/odock_inbound/test_hostile.py."""
    headers = credentials(session)[protocol]
    before = database_state(sessions)
    answer = client.post(path, data=body, headers=headers, content_type=content_type)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert_format(path, answer)
    assert "twice" in answer.get_data(as_text=True)
    if protocol == "scim":
        assert answer.json["scimType"] == "invalidSyntax"
    assert database_state(sessions) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/xml",
    ],
)
def test_a_json_body_said_to_be_another_type_is_415_on_the_admin_api(
    client: FlaskClient, session: Session, sessions: Any, content_type: str
) -> None:
    """The admin API read any body as JSON whatever its Content-Type said: a team sent as a
    form (the type a page's form posts across sites without asking) was created, 201. SCIM
    answered 415 already (tests/scim/test_errors_and_isolation.py); the rule is now the
    shared guard's (webhooks.body.check_json_type). The Odock bridge:
    tests/odock_inbound/test_hostile.py."""
    headers = credentials(session)["admin"]
    before = database_state(sessions)
    body = b'{"name": "Typed"}'
    answer = client.post("/api/v1/teams", data=body, headers=headers, content_type=content_type)
    assert answer.status_code == 415, answer.get_data(as_text=True)[:300]
    assert_format("/api/v1/teams", answer)
    assert database_state(sessions) == before


def padded_json(document: Any, size: int) -> bytes:
    """`document` as JSON of exactly `size` bytes (trailing spaces)."""
    text = json.dumps(document).encode()
    return text + b" " * (size - len(text))


JSON_TARGETS = [
    ("admin", "/api/v1/teams", "application/json", {"name": "Streamed"}),
    ("scim", "/scim/v2/Groups", "application/scim+json", {**GROUP, "displayName": "Streamed"}),
]


@pytest.mark.parametrize("protocol, path, content_type, document", JSON_TARGETS)
def test_a_chunked_json_body_over_the_limit_is_a_413_once_a_byte_past_it_is_read(
    client: FlaskClient,
    session: Session,
    sessions: Any,
    settings: Settings,
    protocol: str,
    path: str,
    content_type: str,
    document: Any,
) -> None:
    """werkzeug stops reading a body without a Content-Length at MAX_BODY_BYTES, silently:
    a longer one was read cut short, and refused as JSON that does not end (400) or, were
    the cut to fall where the JSON ends, read as if it were whole. It is a 413, with no more
    than one byte past the limit read; a body of exactly the limit is read whole."""
    headers = credentials(session)[protocol]
    limit = settings.max_body_bytes
    before = database_state(sessions)
    endless = StreamedBody(json.dumps(document).encode()[:-1] + b', "x": "', ENDLESS)
    refused = client.post(path, **chunked(endless, content_type, **headers))
    assert refused.status_code == 413, refused.get_data(as_text=True)[:300]
    assert_format(path, refused)
    assert endless.taken <= limit + 1, endless.taken
    one_more = StreamedBody(padded_json(document, limit + 1), limit + 1)
    assert client.post(path, **chunked(one_more, content_type, **headers)).status_code == 413
    assert database_state(sessions) == before
    whole = StreamedBody(padded_json(document, limit), limit)
    answer = client.post(path, **chunked(whole, content_type, **headers))
    assert answer.status_code == 201, answer.get_data(as_text=True)[:300]


# ---------------------------------------------------------------------------------------------
# The web process as `odock-sync serve` runs it: gunicorn and webhooks/buffering_worker.py.


@pytest.fixture(scope="module")
def web(settings: Settings, engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """One web process for the file (1 worker x 2 threads); the tests read only its answers
    and the database. A request not read whole within 2 s is refused (408)."""
    workdir = tmp_path_factory.mktemp("web")
    # A hook's credentials stay in the receiver's cache for the file's Okta test.
    env = {"WEB_REQUEST_READ_TIMEOUT": "2", "EVENT_HOOK_CACHE_SECONDS": "60"}
    with web_as_served(settings, workdir, workers=1, threads=2, env=env) as served:
        yield served


@dataclass
class Answer:
    """A raw HTTP answer, read until the server closed the connection."""

    status_code: int
    headers: dict[str, str]
    text: str

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def get_data(self, as_text: bool = True) -> str:
        return self.text


def exchange(web: Web, request: bytes) -> Answer:
    """The answer; status 0 when the connection closed or reset without one (the worker
    died) or none came in 30 s (a safety net, not a bound: every answer here is at once or
    at the 2 s read timeout)."""
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                received += chunk
    except OSError:
        pass
    if not received.startswith(b"HTTP/"):
        return Answer(0, {}, received.decode("latin-1"))
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    return Answer(int(lines[0].split()[1]), headers, body.decode(errors="replace"))


def chunked_post(
    path: str, headers: dict[str, str], content_type: str, body: bytes, coding: str = "chunked"
) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: odock-sync.test\r\nConnection: close\r\n{head}"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: {coding}\r\n\r\n"
    ).encode() + body


def chunks(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


TEAM = b'{"name": "Chunked"}'
MALFORMED_CHUNKS = {
    "size not hex": b"zz\r\n" + TEAM + b"\r\n0\r\n\r\n",
    "chunk longer than its size": b"2\r\n" + TEAM + b"\r\n0\r\n\r\n",
    "no CRLF after the chunk": b"%x\r\n%sXX0\r\n\r\n" % (len(TEAM), TEAM),
    "bad extension": b"%x;\x01\r\n%s\r\n0\r\n\r\n" % (len(TEAM), TEAM),
    "bad trailer": b"%x\r\n%s\r\n0\r\nno colon here\r\n\r\n" % (len(TEAM), TEAM),
}
CHUNKED_TARGETS = [
    ("admin", "/api/v1/teams", "application/json"),
    ("scim", "/scim/v2/Groups", "application/scim+json"),
]


@pytest.mark.parametrize("protocol, path, content_type", CHUNKED_TARGETS)
def test_a_malformed_chunked_body_is_a_400_not_a_500(
    web: Web, session: Session, sessions: Any, protocol: str, path: str, content_type: str
) -> None:
    """gunicorn decodes a chunked body as the app reads it: a malformed one raised from the
    app's first read (InvalidChunkSize, ChunkMissingTerminator, InvalidHeader), a 500.
    A well-formed one still gets through."""
    headers = credentials(session)[protocol]
    before = database_state(sessions)
    for name, body in MALFORMED_CHUNKS.items():
        answer = exchange(web, chunked_post(path, headers, content_type, body))
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:300])
        assert_format(path, answer)
        assert database_state(sessions) == before, name
    group = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "C"}'
    well_formed = chunks(group if protocol == "scim" else TEAM)
    answer = exchange(web, chunked_post(path, headers, content_type, well_formed))
    assert answer.status_code == 201, answer.text[:300]


def head(method: str, target: str, *lines: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in lines)
    return f"{method} {target} HTTP/1.1\r\nHost: odock-sync.test\r\n{fields}\r\n".encode("latin-1")


# What the worker and gunicorn's parser refuse before the app sees a request, by status.
# An unknown transfer coding is 501 by RFC 9112 section 6.1 (gunicorn's answer, kept).
CHUNKED = "Transfer-Encoding: chunked"
REFUSED_BEFORE_THE_APP: dict[str, tuple[int, Callable[[str], bytes]]] = {
    "request line too long": (414, lambda p: head("GET", f"{p}?q={'a' * 5000}")),
    "head over 64 KiB": (
        431,
        lambda p: head("GET", p, *[f"X-{n}: {'b' * 4000}" for n in range(17)]),
    ),
    "one header over 8,190 bytes": (431, lambda p: head("GET", p, "X-Big: " + "b" * 9000)),
    "too many headers": (431, lambda p: head("GET", p, *[f"X-{n}: 1" for n in range(150)])),
    "bad header name": (400, lambda p: head("GET", p, "Bad Name: x")),
    "unknown transfer coding": (501, lambda p: head("POST", p, "Transfer-Encoding: zip")),
    "an Expect we do not know": (
        417,
        lambda p: head("POST", p, "Expect: 200-ok", "Content-Length: 2") + b"{}",
    ),
    "declared body over the limit": (413, lambda p: head("POST", p, "Content-Length: 99999999")),
    "malformed chunked body": (400, lambda p: head("POST", p, CHUNKED) + b"zz\r\n{}\r\n0\r\n\r\n"),
    "body not sent in time": (408, lambda p: head("POST", p, "Content-Length: 10") + b"{}"),
    # Framing gunicorn's parser refuses, refused at once (the worker waited for a body it
    # read otherwise, then 408), and without harm to the worker: a Content-Length of "²"
    # (str.isdigit, then int() raised in the event loop: the worker died) and a chunk size
    # of -6 (the worker's event loop scanned the same line forever, until the arbiter
    # killed it 30 s later).
    "Content-Length not ASCII digits": (400, lambda p: head("POST", p, "Content-Length: \xb2")),
    "Content-Length twice": (
        400,
        lambda p: head("POST", p, "Content-Length: 2", "Content-Length: 3") + b"{}",
    ),
    "chunked, then another coding": (
        400,
        lambda p: head("POST", p, "Transfer-Encoding: chunked, gzip") + b"{}",
    ),
    "negative chunk size": (400, lambda p: head("POST", p, CHUNKED) + b"-6\r\nab\r\n0\r\n\r\n"),
    "bare LF": (400, lambda p: f"GET {p} HTTP/1.1\nHost: odock-sync.test\n\n".encode()),
}
PATHS_OF_EACH_PROTOCOL = [
    "/scim/v2/Users",
    "/console/sign-in",
    "/enroll/some-token",
    "/reviews/acknowledge/some-token",
    "/api/v1/teams",
    "/hooks/okta/nobody",
]


@pytest.mark.parametrize("path", PATHS_OF_EACH_PROTOCOL)
def test_requests_refused_before_the_app_are_in_the_format_of_their_path(
    web: Web, path: str
) -> None:
    """The worker's own refusals and what gunicorn's parser refuses were problem JSON on
    every path: a SCIM client got problem JSON, a browser a JSON document."""
    wrong = []
    for name, (status, request) in REFUSED_BEFORE_THE_APP.items():
        answer = exchange(web, request(path))
        try:
            assert answer.status_code == status, answer.status_code
            assert_format(path, answer, allowed=501)
        except (AssertionError, ValueError) as failed:
            wrong.append(f"{name}: {failed} {answer.mimetype} {answer.text[:120]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("protocol, path, content_type", CHUNKED_TARGETS)
def test_a_body_compressed_in_transfer_is_not_read_as_is_by_the_web_process(
    web: Web, session: Session, sessions: Any, protocol: str, path: str, content_type: str
) -> None:
    """gunicorn accepts `Transfer-Encoding: gzip, chunked`, takes the chunks off and hands
    the app the rest as it came: a body that was not compressed after all was read as JSON
    and created the team or group (201)."""
    headers = credentials(session)[protocol]
    group = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Z"}'
    body = chunks(group if protocol == "scim" else TEAM)
    before = database_state(sessions)
    answer = exchange(web, chunked_post(path, headers, content_type, body, "gzip, chunked"))
    assert answer.status_code == 501, answer.text[:300]
    assert_format(path, answer, allowed=501)
    assert database_state(sessions) == before


# Each route's body limit (webhooks.body_limits) and a route of each that takes it.
ROUTE_LIMITS = [
    ("/enroll/some-token", "enrollment_max_form_bytes"),
    ("/api/v1/teams", "max_body_bytes"),
    ("/scim/v2/Groups", "max_body_bytes"),
    ("/hooks/okta/nobody", "event_max_body_bytes"),
]


@pytest.mark.parametrize("path, limit_name", ROUTE_LIMITS)
def test_a_declared_body_over_the_routes_limit_is_refused_instead_of_100_continue(
    web: Web, settings: Settings, path: str, limit_name: str
) -> None:
    """RFC 9110 section 10.1.1: a server MAY answer the final status instead of 100 Continue.
    The worker answered 100 to any head declaring no more than the largest limit of any route
    (4 MiB, Odock's usage batches), and read that body for the app to refuse it: a client
    waiting for 100 before it sends (curl, .NET) sent all of it, authenticated or not. A
    Content-Length over the route's own limit is refused at once, with no 100; within it,
    100 Continue is still answered (then a 408 here: no body follows)."""
    limit = getattr(settings, limit_name)
    # Credentials of the right shape, so that 100 is asked of the body's size alone.
    expect = ("Expect: 100-continue", "Content-Type: application/json", WELL_FORMED_BEARER)
    over = exchange(web, head("POST", path, *expect, f"Content-Length: {limit + 1}"))
    assert over.status_code == 413, (over.status_code, over.text[:300])
    assert_format(path, over)
    within = exchange(web, head("POST", path, *expect, f"Content-Length: {limit}"))
    assert within.status_code == 100, (within.status_code, within.text[:300])


# Shaped as the route's credentials are (webhooks.route_credentials), not valid ones: the
# web worker looks at their presence and shape only, the app verifies them after the body.
WELL_FORMED_BEARER = "Authorization: Bearer odk_admin_WellFormedButUnknown"
WELL_FORMED_SIGNATURE = (
    "webhook-id: msg_1",
    "webhook-timestamp: 1700000000",
    "webhook-signature: v1,c2lnbmVkIGJ5IG5vYm9keQ==",
)
ODOCK_KEY = "/odock/v1/keys/6f1c1a52-0a7e-4d8e-9a52-4f1fbbd1c0de"
# method, path, what the head carries instead of the route's credentials, them well-formed
ABSENT_CREDENTIALS = [
    ("POST", "/scim/v2/Groups", (), (WELL_FORMED_BEARER,)),
    ("POST", "/scim/v2/Groups", ("Authorization: Basic dXNlcjpwYXNz",), (WELL_FORMED_BEARER,)),
    ("POST", "/api/v1/teams", (), (WELL_FORMED_BEARER,)),
    ("POST", "/api/v1/teams", ("Authorization: Bearer",), (WELL_FORMED_BEARER,)),
    ("POST", "/api/v1/teams", ("Authorization: Bearer two words",), (WELL_FORMED_BEARER,)),
    ("PUT", ODOCK_KEY, ("Authorization: odk_odock_NoScheme",), (WELL_FORMED_BEARER,)),
    ("POST", "/hooks/events/some-org", (), WELL_FORMED_SIGNATURE),
    (
        "POST",
        "/hooks/events/some-org",
        ("webhook-id: msg_1", "webhook-timestamp: soon", "webhook-signature: v1,c2ln"),
        WELL_FORMED_SIGNATURE,
    ),
    ("POST", "/hooks/enrollment/some-org", ("webhook-id: msg_1",), WELL_FORMED_SIGNATURE),
]
EXPECT_1000 = ("Expect: 100-continue", "Content-Type: application/json", "Content-Length: 1000")


@pytest.mark.parametrize("method, path, absent, well_formed", ABSENT_CREDENTIALS)
def test_absent_or_malformed_credentials_are_refused_instead_of_100_continue(
    web: Web, method: str, path: str, absent: tuple[str, ...], well_formed: tuple[str, ...]
) -> None:
    """RFC 9110 section 10.1.1. The worker answered 100 Continue to any head within its
    route's body limit, credentials or none: a client without them was asked for its body
    (up to the limit) before the app's 401. A head whose credentials are absent or not
    shaped as the route's are gets the route's own 401 at once, and the connection is closed
    without the body being waited for (it never comes here: a 100 would be followed by the
    2 s read timeout's 408). Well-formed credentials, valid or not, still get 100."""
    refused = exchange(web, head(method, path, *EXPECT_1000, *absent))
    assert refused.status_code == 401, (refused.status_code, refused.text[:300])
    assert_format(path, refused)
    if path.startswith(("/scim/v2/", "/api/v1/", "/odock/v1/")):
        assert refused.headers["www-authenticate"].startswith("Bearer realm=")
    if path.startswith("/hooks/events/"):
        assert json.loads(refused.text)["title"] in ("missing_signature", "stale_timestamp")
    if path.startswith("/hooks/enrollment/"):
        assert json.loads(refused.text)["detail"].startswith("signature rejected: missing")
    continued = exchange(web, head(method, path, *EXPECT_1000, *well_formed))
    assert continued.status_code == 100, (continued.status_code, continued.text[:300])


def test_an_okta_hook_without_its_header_is_refused_instead_of_100_continue(
    web: Web, session: Session, settings: Settings
) -> None:
    """Which header an Okta hook sends is the organisation's: the worker knows it once the
    receiver has read the hook's configuration (its cache, never the database from the
    worker). Then a head without that header gets the receiver's 401 at once, and one with
    it 100 Continue. It was 100 either way."""
    org = f.make_org(session)
    event_hooks.set_okta_secret(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        header_name="X-Okta-Secret",
        secret="okta-secret-of-sixteen-or-more",
    )
    session.commit()
    path = f"/hooks/okta/{org.slug}"
    read = exchange(web, head("POST", path, "Content-Length: 0", "Connection: close"))
    assert read.status_code == 401, (read.status_code, read.text[:300])  # the cache is filled
    refused = exchange(web, head("POST", path, *EXPECT_1000, WELL_FORMED_BEARER))
    assert refused.status_code == 401, (refused.status_code, refused.text[:300])
    assert_format(path, refused)
    assert json.loads(refused.text)["title"] == "unauthorized"
    continued = exchange(web, head("POST", path, *EXPECT_1000, "X-Okta-Secret: a guess"))
    assert continued.status_code == 100, (continued.status_code, continued.text[:300])


@pytest.mark.parametrize("path", ["/enroll/some-token", "/reviews/acknowledge/some-token"])
def test_a_public_route_answers_100_continue_without_credentials(web: Web, path: str) -> None:
    """Routes that take no credentials (the invitee's form, a review link: their token is
    in the path) are asked for their body as before. A guard: it passed before."""
    form = ("Expect: 100-continue", "Content-Type: application/x-www-form-urlencoded")
    continued = exchange(web, head("POST", path, *form, "Content-Length: 100"))
    assert continued.status_code == 100, (continued.status_code, continued.text[:300])


@pytest.mark.parametrize("receiver", ["events", "enrollment"])
def test_a_receiver_asked_to_continue_without_signature_reads_no_body(
    client_with: Callable[..., FlaskClient], session: Session, settings: Settings, receiver: str
) -> None:
    """The app asks the same question before it reads the body of a request that waits for
    100 Continue (for a server that sends 100 on the app's first read; gunicorn's own
    reading, the TLS fallback, sends it before the app runs). The signed receivers read
    their body whole to verify it, and only then refused the missing signature."""
    org = f.make_org(session)
    event_hooks.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    session.commit()
    client = client_with(enrollment_webhook_secrets=signed_webhooks.new_signing_secret())
    path = f"/hooks/{receiver}/{org.slug}"
    body = StreamedBody(b"{}", 4096)
    refused = client.post(path, **chunked(body, "application/json", Expect="100-continue"))
    assert refused.status_code == 401, refused.get_data(as_text=True)[:300]
    assert_format(path, refused)
    assert body.taken == 0, body.taken


@pytest.mark.parametrize("path, limit_name", ROUTE_LIMITS)
def test_a_chunked_body_that_does_not_end_is_refused_once_it_passes_the_routes_limit(
    web: Web, settings: Settings, path: str, limit_name: str
) -> None:
    """A chunked body was read up to the largest limit of any route (4 MiB) before the app
    saw it, and one that did not end was waited for (408). It is refused once its chunks
    pass the route's own limit: here a chunk that says it is one byte too many, of which a
    few bytes come, and nothing more."""
    limit = getattr(settings, limit_name)
    body = b"%x\r\n%s" % (limit + 1, b"a" * 64)
    answer = exchange(web, chunked_post(path, {}, "application/json", body))
    assert answer.status_code == 413, (answer.status_code, answer.text[:300])
    assert_format(path, answer)


def test_an_enrollment_form_sent_in_small_chunks_without_end_is_refused_past_its_limit(
    web: Web, settings: Settings
) -> None:
    """The enrollment form's limit (8 KiB) in 1 KiB chunks, then one more and no last chunk:
    refused once the chunks pass it, as it arrives. It was waited for until the read
    timeout (408), the worker's limit being the largest of any route."""
    limit = settings.enrollment_max_form_bytes
    chunk = b"400\r\n" + b"a" * 1024 + b"\r\n"
    body = chunk * (limit // 1024 + 1)
    form = "application/x-www-form-urlencoded"
    answer = exchange(web, chunked_post("/enroll/some-token", {}, form, body))
    assert answer.status_code == 413, (answer.status_code, answer.text[:300])
    assert_format("/enroll/some-token", answer)
