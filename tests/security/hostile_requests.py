"""The hostile requests of tests/security/test_hostile_routes.py: a catalogue per route, a
hypothesis strategy drawing from the same pieces, and a sender that puts the right kind of
credential on each (so the input reaches the handler) and sends bytes as a proxy would
forward them (the path and query string raw, not re-encoded by the test client)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes, urlsplit

from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.security.tenants import CSRF, OKTA_SECRET_B
from tests.support.fuzz import json_values, raw_bodies
from tests.support.hostile import HOSTILE_VALUES

HOOK_SECRET = "whsec_" + base64.b64encode(b"hostile-routes-enrollment-secret").decode()
IDENTITY_HEADER = "X-Odock-Verified-Email"
SCIM_TYPE = "application/scim+json"
PARAM = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")
FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')
WITH_BODY = ("POST", "PUT", "PATCH")
FORM_TYPE = "application/x-www-form-urlencoded"
LATIN_JSON = "application/json; charset=latin-1"

# The query parameters each area reads (grep request.args and *_param in webhooks/).
ADMIN_NAMES = [
    "action", "actor", "actor_user_id", "batch_id", "before", "campaign_id", "cause",
    "cursor", "delivery_id", "finding_id", "hook_id", "key_id", "limit", "offset", "q",
    "request_id", "review_id", "revoke_own", "role", "since", "source", "state", "status",
    "target_id", "target_type", "team_id", "until", "user_id",
]  # fmt: skip
CONSOLE_NAMES = [
    "action", "actor", "actor_user_id", "before", "cursor", "done", "key_id", "limit",
    "offset", "organisation", "since", "source", "status", "target_id", "target_type",
    "team_id", "until", "user_id",
]  # fmt: skip
SCIM_NAMES = ["attributes", "count", "excludedAttributes", "filter", "sortBy", "sortOrder",
              "startIndex"]  # fmt: skip
OIDC_NAMES = ["again", "code", "error", "error_description", "iss", "organisation", "state"]
NAMES_OF = {
    "admin": ADMIN_NAMES,
    "console": CONSOLE_NAMES,
    "console_public": OIDC_NAMES,
    "scim": SCIM_NAMES,
    "oidc_console": OIDC_NAMES,
    "oidc_enroll": OIDC_NAMES,
}
QUERY_NAMES = sorted({*ADMIN_NAMES, *CONSOLE_NAMES, *SCIM_NAMES, *OIDC_NAMES, "version"})
# Values that pass the shared query guard (which refuses NUL and surrogates) and so reach
# each reader: not ASCII digits, beyond any range, long, tampered, shaped like an attack.
ODD_VALUES = [
    "%D9%A3",  # "٣", an Arabic-Indic digit
    "1" + "0" * 30,
    "-1",
    "%EF%BC%91%EF%BC%92",  # fullwidth digits one and two
    "x" * 3000,
    "..%2F..%2Fetc%2Fpasswd",
    "nan",
    "1e400",
    "%20",
    "00000000-0000-0000-0000-00000000000g",
    "%E2%80%AE%3Cscript%3E",
    "true%3Bfalse",
]
LIST_QUERIES = [
    "limit=" + "1" + "0" * 30,
    "limit=%D9%A3",
    "limit=-1",
    "limit=0",
    "cursor=garbage",
    "cursor=" + str(uuid.UUID(int=1))[:-1] + "z",  # a cursor tampered with
    "cursor=" + base64.urlsafe_b64encode(b'{"after":"' + b"9" * 40 + b'"}').decode(),
    "before=" + str(uuid.uuid4()) + "&cursor=" + str(uuid.uuid4()),
    "since=not-a-date&until=" + "9" * 30,
    "since=9999-99-99T99%3A99%3A99",
    "since=0001-01-01T00%3A00%3A00%2B01%3A00",
    "until=9999-12-31T23%3A59%3A59-14%3A00",
    "limit=" + str(10**19),
    "done=" + quote("<script>alert(1)</script>"),
    "x=" + "y" * 20000,
    "&".join(f"p{n}=1" for n in range(3000)),
]
SCIM_QUERIES = [
    "startIndex=-5&count=" + "9" * 30,
    "count=%D9%A3",
    "startIndex=%EF%BC%91",
    "filter=" + quote('userName eq "a" and (' * 60),
    "filter=" + quote('emails[value eq "a"'),
    "filter=" + "x" * 9000,
    "sortBy=" + quote("meta..lastModified") + "&sortOrder=sideways",
    "attributes=" + quote(",,," + "a." * 500),
    "excludedAttributes=" + quote("urn:x:" * 300),
]
OIDC_QUERIES = [
    "organisation=" + "x" * 500,
    "organisation=%2E%2E%2F",
    "state=" + "A" * 5000 + "&code=x&iss=" + quote("https://evil.test"),
    "error=access_denied&error_description=" + "x" * 5000,
    "again=%D9%A3",
]
QUERIES_OF = {
    "admin": LIST_QUERIES,
    "console": LIST_QUERIES,
    "scim": SCIM_QUERIES,
    "console_public": OIDC_QUERIES,
    "oidc_console": OIDC_QUERIES,
    "oidc_enroll": OIDC_QUERIES,
}
# On every route: the shared guard's refusals (webhooks/body.py, before any route's code;
# the same on every route but for the protocol's format) and a few absurd values.
EVERY_ROUTE_QUERIES = [
    "q=%00",
    "%FF=1&q=%ED%A0%80",
    "limit=1&limit=2",
    "q=caf\xe9",  # the byte 0xE9 raw, not percent-encoded: not UTF-8 (WSGI's latin-1)
    "limit=" + "1" + "0" * 30,
    "cursor=garbage",
    "version=" + "9" * 40,
    "version=" + str(2**63),
]
PATH_VALUES = [
    "9" * 400,
    "%D9%A3%D9%A3",
    "%00",
    "..",
    "%2E%2E%2F%2E%2E",
    "%FF%FE",
    "%ED%A0%80",
    "x" * 3000,
    "%EF%BC%91%EF%BC%92",
    "%20",
    str(uuid.uuid4()),
]
HEADERS: list[tuple[str, dict[str, str]]] = [
    ("authorization_huge", {"Authorization": "Bearer " + "x" * 16000}),
    ("authorization_latin1", {"Authorization": "Bearer \xff\xfe\x00\x7f"}),
    ("authorization_no_secret", {"Authorization": "Bearer"}),
    ("authorization_basic", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}),
    ("if_match_garbage", {"If-Match": 'W/"\xff' + "x" * 40}),
    ("if_match_huge", {"If-Match": '"' + "9" * 9000 + '"'}),
    ("if_match_list", {"If-Match": '"a", , W/"", *, "\\"'}),
    ("if_none_match_garbage", {"If-None-Match": "*,*,\x01"}),
    ("request_id_garbage", {"X-Request-Id": "\xff" * 3000}),
    ("accept_garbage", {"Accept": "*/*;q=nan, text/html;q=9e999, ;;;"}),
    ("forwarded_garbage", {"X-Forwarded-For": "\xff, ::::, 999.1.1.1", "Forwarded": "for=\x01"}),
    ("content_encoding_gzip", {"Content-Encoding": "gzip"}),
    ("host_label_too_long", {"Host": "x" * 64 + ".test"}),  # werkzeug's BadHost
    ("host_garbage", {"Host": "a b:99999"}),
    ("cookie_garbage", {"Cookie": "odock_console=" + "\xff" * 200 + "; a=" + "b" * 3000}),
    # Signed (send signs with a probe's own webhook-id): the id reaches the delivery's INSERT.
    ("nul_in_headers", {"webhook-id": "msg_\x00nul", "User-Agent": "agent\x00"}),
    (
        "webhook_headers_garbage",
        {"webhook-id": "\xff", "webhook-timestamp": "1e400", "webhook-signature": "v1,===="},
    ),
]


@dataclass
class Sent:
    """One request as bytes: path and query raw (percent-encoded), headers, body."""

    method: str
    path: str
    query: str = ""
    protocol: str = "public"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    csrf: str | None = "session"  # console: "session" (the right one), "wrong", None
    form: dict[str, str] | None = None
    raw_form: bytes | None = None

    def describe(self) -> str:
        query = f"?{self.query}" if self.query else ""
        body = (self.raw_form or self.body or b"")[:120]
        headers = {k: v[:60] for k, v in self.headers.items()}
        return f"{self.path[:160]}{query[:160]} headers={headers} body={body!r}"


@dataclass(frozen=True)
class Probe:
    """A named hostile change to a route's well-formed request."""

    name: str
    change: Callable[[Sent], Sent]

    def build(self, world: Any, target: Any, method: str) -> Sent:
        return self.change(base_request(world, target, method))


def base_request(world: Any, target: Any, method: str) -> Sent:
    path, _, query = world.fill(target.path).partition("?")
    body = world.fill(target.body)
    sent = Sent(method, quote(path, safe="/:@%"), query, target.protocol)
    if target.protocol in ("console", "console_sign_in", "review_link", "enroll"):
        if method == "POST":
            sent.form = {k: str(v) for k, v in (body or {}).items()}
    elif body is not None and method in WITH_BODY:
        sent.body = json.dumps(body).encode()
        sent.content_type = SCIM_TYPE if target.protocol == "scim" else "application/json"
    return sent


def _with_query(query: str) -> Callable[[Sent], Sent]:
    """The route's query with these parameters added, each replacing the route's own of
    that name (a route's `version=99` becomes the odd version, not a repeat the shared
    guard would refuse before the reader sees it)."""
    names = {pair.partition("=")[0] for pair in query.split("&")}

    def change(s: Sent) -> Sent:
        kept = [pair for pair in s.query.split("&") if pair and pair.partition("=")[0] not in names]
        return replace(s, query="&".join([*kept, query]))

    return change


def _with_path_value(param: str, value: str, template: str) -> Callable[[Sent], Sent]:
    def change(s: Sent) -> Sent:
        # The route's path with this one parameter's value replaced (the others kept).
        parts = template.split("/")
        filled = s.path.split("/")
        for index, part in enumerate(parts):
            if PARAM.fullmatch(part) and PARAM.fullmatch(part).group(1) == param:  # type: ignore[union-attr]
                filled[index] = value
        return replace(s, path="/".join(filled))

    return change


def _with_headers(headers: dict[str, str]) -> Callable[[Sent], Sent]:
    """These headers in place of the request's own (its credential among them: an odd
    Authorization or Cookie replaces the route's)."""
    return lambda s: replace(s, headers={**s.headers, **headers})


def _with_body(
    body: bytes, content_type: str | None = "application/json"
) -> Callable[[Sent], Sent]:
    def change(s: Sent) -> Sent:
        if s.form is not None:
            return replace(s, form=None, raw_form=None, body=body, content_type=content_type)
        if content_type == "application/json" and s.protocol == "scim":
            return replace(s, body=body, content_type=SCIM_TYPE)
        return replace(s, body=body, content_type=content_type)

    return change


def _json_fields(s: Sent) -> dict[str, Any]:
    try:
        document = json.loads(s.body or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _with_field(name: str, value: Any) -> Callable[[Sent], Sent]:
    def change(s: Sent) -> Sent:
        if s.form is not None:
            return replace(s, form={**s.form, name: str(value)})
        document = {**_json_fields(s), name: value}
        return replace(s, body=json.dumps(document).encode())

    return change


def _with_raw_form(raw: bytes) -> Callable[[Sent], Sent]:
    return lambda s: replace(s, raw_form=raw, form=None)


ODD_FIELD_VALUES: list[Any] = [
    None,
    10**30,
    {"a": [1]},
    "x" * 5000,
    "٣",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    -(2**63) - 1,
    1e-320,
    "",
]
# Numbers the shared decoder lets through (at most 20 digits, finite) that no integer or
# numeric column holds.
EDGE_NUMBERS: list[Any] = [10**19, 2**63, 1e308]


AUTH_HEADERS = {"authorization_huge", "authorization_latin1", "authorization_basic"}
COMMON_HEADERS = {
    "request_id_garbage",
    "accept_garbage",
    "content_encoding_gzip",
    "host_label_too_long",
    "host_garbage",
    "nul_in_headers",
}
HEADERS_OF: dict[str, set[str]] = {
    "admin": AUTH_HEADERS | {"if_match_garbage"},
    "scim": AUTH_HEADERS
    | {"if_match_garbage", "if_match_huge", "if_match_list", "if_none_match_garbage"},
    "odock": AUTH_HEADERS | {"if_match_garbage", "if_match_huge"},
    "odock_events": AUTH_HEADERS | {"webhook_headers_garbage"},
    "events": {"webhook_headers_garbage", "authorization_huge"},
    "enrollment_hook": {"webhook_headers_garbage"},
    "okta": {"authorization_huge", "authorization_latin1", "authorization_no_secret"},
    "okta_verify": {"authorization_huge", "authorization_latin1"},
    "console": {"cookie_garbage", "forwarded_garbage"},
    "console_sign_in": {"cookie_garbage", "forwarded_garbage"},
    "public": {"if_match_huge", "if_match_list", "if_none_match_garbage"},
}


def catalogue(rule: str, method: str, target: Any) -> list[Probe]:
    """The hostile requests for one route and method."""
    probes: list[Probe] = []
    reads_query = (method == "GET" and "<" not in rule) or target.protocol.startswith("oidc")
    queries = [*EVERY_ROUTE_QUERIES, *(QUERIES_OF.get(target.protocol, []) if reads_query else [])]
    probes += [Probe(f"query {q[:30]}", _with_query(q)) for q in queries]
    if reads_query:
        for n, name in enumerate(NAMES_OF.get(target.protocol, [])):
            value = ODD_VALUES[n % len(ODD_VALUES)]
            probes.append(Probe(f"param {name}", _with_query(f"{name}={value}")))
    for param in PARAM.findall(rule):
        converter = re.search(rf"<(\w+)(?:\([^)]*\))?:{param}>", rule)
        values = PATH_VALUES[:3] if converter and converter.group(1) == "uuid" else PATH_VALUES
        probes += [
            Probe(f"path {param}={v[:20]}", _with_path_value(param, v, rule)) for v in values
        ]
    wanted = COMMON_HEADERS | HEADERS_OF.get(target.protocol, set())
    probes += [Probe(name, _with_headers(h)) for name, h in HEADERS if name in wanted]
    if method in WITH_BODY or method == "DELETE":
        probes += body_probes(target, method)
    if target.protocol == "console" and method == "POST":
        probes += [
            Probe("console without csrf", lambda s: replace(s, csrf=None)),
            Probe("console wrong csrf", lambda s: replace(s, csrf="wrong")),
            Probe("console csrf twice", lambda s: replace(s, csrf="twice")),
        ]
    if target.protocol.startswith("oidc"):
        probes += oidc_probes()
    # The same request with the methods every route answers besides its own.
    probes.append(Probe("method OPTIONS", lambda s: replace(s, method="OPTIONS")))
    if method == "GET":
        probes.append(Probe("method HEAD", lambda s: replace(s, method="HEAD")))
    return probes


# The hostile values of issue 14 the shared decoder refuses, one of each kind.
BODY_VALUES = ["nan", "nested_33_deep", "integer_of_5000_digits", "nul", "lone_low_surrogate"]


def body_probes(target: Any, method: str) -> list[Probe]:
    probes = [
        Probe("body malformed", _with_body(b'{"a": ')),
        Probe("body deep", _with_body(b"[" * 5000 + b"]" * 5000)),
        Probe("body huge", _with_body(b'{"a": "' + b"x" * (1_100_000) + b'"}')),
        Probe("body not utf-8", _with_body(b'{"name": "\xff\xfe"}')),
        Probe("body utf-16", _with_body('{"a": 1}'.encode("utf-16"))),
        Probe("body array", _with_body(b"[]")),
        Probe("body null", _with_body(b"null")),
        Probe("body text/plain", lambda s: replace(s, content_type="text/plain")),
        Probe("body form type", lambda s: replace(s, content_type=FORM_TYPE)),
        Probe(
            "body multipart",
            _with_body(b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n--",
                       "multipart/form-data; boundary=x"),
        ),
        Probe("body json charset", lambda s: replace(s, content_type=LATIN_JSON)),
        Probe("body no content type", lambda s: replace(s, content_type=None)),
    ]  # fmt: skip
    for name in BODY_VALUES:
        fragment = HOSTILE_VALUES[name][0]
        probes.append(Probe(f"body {name}", _with_body(f'{{"a": {fragment}}}'.encode())))
    fields = list((target.body or {}).keys())[:4] if isinstance(target.body, dict) else []
    extra = ["schemas", "Operations"] if target.protocol == "scim" else ["unknown_field"]
    # Each field: the edge numbers (one, unless it holds a number), and three odd values in
    # turn, so that every value meets some field of every route (hypothesis draws more).
    size = len(ODD_FIELD_VALUES)
    for n, name in enumerate([*fields, *extra]):
        turn = [ODD_FIELD_VALUES[(3 * n + k) % size] for k in range(3)]
        number = isinstance((target.body or {}).get(name), int | float)
        for value in [*(EDGE_NUMBERS if number else EDGE_NUMBERS[:1]), *turn]:
            probes.append(Probe(f"field {name}={str(value)[:12]}", _with_field(name, value)))
    if target.protocol == "console" or target.protocol in ("review_link", "enroll"):
        probes += [
            Probe("form not utf-8", _with_raw_form(b"note=%FF%FE&reason=\xff&user_id=%00")),
            Probe("form duplicate", _with_raw_form(b"note=a&note=b&decision=keep&decision=revoke")),
            Probe("form huge", _with_raw_form(b"note=" + b"x" * 1_100_000)),
            Probe("form json", _with_body(b'{"note": "x"}')),
        ]
    return probes


def oidc_probes() -> list[Probe]:
    """A provider's answer to a sign-in the probe started ({started}: its state), garbage."""
    return [
        Probe("oidc started state, garbage code", _with_query("state={started}&code=garbage")),
        Probe(
            "oidc started state, garbage iss",
            _with_query("state={started}&code=x&iss=" + quote("https://evil.test/\xff")),
        ),
        Probe("oidc started state, error", _with_query("state={started}&error=%FF&error_uri=x")),
        Probe("oidc tampered state", _with_query("state={tampered}&code=x")),
        Probe("oidc state twice", _with_query("state={started}&state={started}&code=x")),
        Probe("oidc garbage all", _with_query("state=%FF&code=%00&iss=%ED%A0%80")),
    ]


# ---------------------------------------------------------------------------------------------


def sign_standard(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    """Standard Webhooks headers over raw bytes (the library's helper signs text only)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def _oidc_started(world: Any, client: Any, protocol: str) -> str:
    """A sign-in started in `client` (the cookie it sets), its state."""
    if protocol == "oidc_console":
        answer = client.get(f"/console/oidc/sign-in?organisation={world.values['slug']}")
    else:
        answer = client.get(
            f"/enroll/{world.values['enroll_token']}/sign-in",
        )
    location = answer.headers.get("Location", "")
    states = parse_qs(urlsplit(location).query).get("state", [""])
    return states[0]


def _cookies(client: Any) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in client._cookies.values())


def send(world: Any, sent: Sent) -> Any:
    """Send it with the route's credential (a probe's own headers replace it); the answer (a
    Flask test response). The client keeps no cookies: each request carries the ones its
    credential needs, so a probe can replace them."""
    protocol = sent.protocol
    headers: dict[str, str] = {}
    body = sent.body
    query = sent.query
    tenant = world.tenant
    flow = (
        world.fresh_client()
        if protocol in ("console_sign_in", "oidc_console", "oidc_enroll")
        else None
    )
    if protocol in ("admin", "scim", "odock", "odock_events"):
        headers.update(tenant.bearer(protocol.removesuffix("_events")))
    if protocol == "scim":
        headers["Accept"] = SCIM_TYPE
    if protocol in ("okta", "okta_verify"):
        headers["Authorization"] = OKTA_SECRET_B
    if protocol == "okta_verify":
        headers["X-Okta-Verification-Challenge"] = "challenge"
    if protocol == "enroll":
        headers[IDENTITY_HEADER] = world.values["invitee_email"]
    if protocol == "console":
        headers["Cookie"] = world.console_cookie
    form = sent.form
    if form is not None and form.get("token") == "{fresh_admin_token}":
        form = {**form, "token": world.fresh_admin_token()}
    if sent.method == "POST" and protocol in ("console", "console_sign_in") and form is not None:
        if protocol == "console_sign_in":
            page = flow.get("/console/sign-in").get_data(as_text=True)
            match = CSRF.search(page)
            token = match.group(1) if match else ""
        else:
            token = world.csrf
        if sent.csrf == "session":
            form = {**form, "csrf": token}
        elif sent.csrf == "wrong":
            form = {**form, "csrf": token[:-2] + "00"}
        elif sent.csrf == "twice":
            body = (
                "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items())
                + f"&csrf={token}&csrf=other"
            ).encode()
            form = None
            sent = replace(sent, content_type="application/x-www-form-urlencoded")
    if sent.method == "POST" and protocol == "enroll" and form is not None:
        page = world.client.get(sent.path, headers=headers).get_data(as_text=True)
        match = FORM_KEY.search(page)
        form = {**form, "form_key": match.group(1) if match else ""}
    if sent.raw_form is not None:
        raw = sent.raw_form
        if protocol == "console" and sent.csrf == "session":
            raw += f"&csrf={world.csrf}".encode()
        body, form = raw, None
        sent = replace(sent, content_type="application/x-www-form-urlencoded")
    if form is not None:
        body = "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items()).encode()
        sent = replace(sent, content_type="application/x-www-form-urlencoded")
    if protocol.startswith("oidc") and "{" in query:
        state = _oidc_started(world, flow, protocol)
        tampered = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
        query = query.replace("{started}", quote(state)).replace("{tampered}", quote(tampered))
    if flow is not None and _cookies(flow):
        headers["Cookie"] = _cookies(flow)
    if body is not None:
        msg_id = sent.headers.get("webhook-id")
        if protocol == "events":
            headers.update(sign_standard(tenant.signing_secret, body, msg_id))
        if protocol == "odock_events":
            headers.update(sign_standard(world.values["odock_secret"], body, msg_id))
        if protocol == "enrollment_hook":
            headers.update(sign_standard(HOOK_SECRET, body, msg_id))
    headers.update(sent.headers)
    if sent.content_type is not None:
        headers["Content-Type"] = sent.content_type
    builder = EnvironBuilder(method=sent.method, data=body, headers=headers)
    environ = builder.get_environ()
    builder.close()
    environ["PATH_INFO"] = unquote_to_bytes(sent.path).decode("latin-1")
    environ["QUERY_STRING"] = query
    environ["REQUEST_URI"] = environ["RAW_URI"] = sent.path + (f"?{query}" if query else "")
    if sent.content_type is None:
        environ.pop("CONTENT_TYPE", None)
    return world.raw_client.open(Request(environ))


def probe_strategy(rule: str, method: str, target: Any) -> st.SearchStrategy[Probe]:
    """A probe drawn from the same pieces, combined: an odd query parameter with an odd
    value, an odd path value, an odd header, and (for a write) a field with an odd value."""
    names = st.sampled_from(QUERY_NAMES)
    values = st.one_of(
        st.sampled_from(ODD_VALUES),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=8).map(
            lambda text: quote(text, safe="")
        ),
        st.integers(-(10**40), 10**40).map(str),
    )
    pieces: list[st.SearchStrategy[Callable[[Sent], Sent]]] = [
        st.builds(lambda n, v: _with_query(f"{n}={v}"), names, values),
        st.sampled_from(HEADERS).map(lambda pair: _with_headers(pair[1])),
    ]
    params = PARAM.findall(rule)
    if params:
        pieces.append(
            st.builds(
                lambda p, v: _with_path_value(p, v, rule),
                st.sampled_from(params),
                st.one_of(st.sampled_from(PATH_VALUES), values),
            )
        )
    if method in WITH_BODY and isinstance(target.body, dict):
        fields = [*target.body, "unknown_field"]
        odd = st.one_of(
            st.sampled_from(ODD_FIELD_VALUES),
            st.text(max_size=12),
            st.integers(-(10**25), 10**25),
            st.lists(st.text(max_size=3), max_size=3),
        )
        pieces.append(st.builds(_with_field, st.sampled_from(fields), odd))
    if method in WITH_BODY:
        names = list(target.body or {"a": 1}) if isinstance(target.body, dict) else ["a"]
        pieces.append(raw_bodies(json_values(names)).map(_with_body))
    changes = st.lists(st.one_of(*pieces), min_size=1, max_size=3)

    def combined(chosen: list[Callable[[Sent], Sent]]) -> Probe:
        def change(s: Sent) -> Sent:
            for one in chosen:
                s = one(s)
            return s

        return Probe("drawn", change)

    return changes.map(combined)


# A token's last use is written on every authenticated request, refused or not
# (tests/support/state.py leaves it out of the state too).
NOT_A_CHANGE = re.compile(r"^\s*UPDATE api_tokens SET last_used_at", re.IGNORECASE)
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|MERGE)\b", re.IGNORECASE)


class CommittedWrites:
    """The write statements the app's engine committed, as they reach the database: a cheap
    per-request witness that a refusal changed nothing (a full snapshot of every table, at
    each of thousands of requests, would take minutes). Writes rolled back do not count."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.pending: dict[int, list[str]] = {}
        self.committed: list[str] = []
        self._event = event
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if WRITE.match(statement) and not NOT_A_CHANGE.match(statement):
            self.pending.setdefault(id(conn), []).append(statement.split("\n")[0][:120])

    def _commit(self, conn: Any) -> None:
        self.committed += self.pending.pop(id(conn), [])

    def _rollback(self, conn: Any) -> None:
        self.pending.pop(id(conn), None)

    def take(self) -> list[str]:
        taken, self.committed = self.committed, []
        return taken

    def close(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._statement)
        self._event.remove(self.engine, "commit", self._commit)
        self._event.remove(self.engine, "rollback", self._rollback)
