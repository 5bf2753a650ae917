"""The ID token check of connectors/oidc.py, each claim broken in turn, against a JWKS and a
discovery document served on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from pytest_httpserver import HTTPServer, RequestHandler
from werkzeug import Response

from connectors import oidc
from connectors.outbound import UrlPolicy
from tests.support.oidc import serve_discovery
from tests.support.trickled_body import TrickledBody

NONCE = "n-0S6_WzA2Mj"
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
IMPOSTOR_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture
def client(httpserver) -> oidc.Client:
    issuer = serve_discovery(
        httpserver, "/issuer", id_token_signing_alg_values_supported=["RS256", "HS256", "none"]
    )
    httpserver.expect_request("/issuer/jwks").respond_with_json(
        KeySet([SIGNING_KEY]).as_dict(private=False)
    )
    return oidc.Client(
        issuer=issuer,
        client_id="odock",
        client_secret="client-secret-0123456789abcdef",
        redirect_uri="http://127.0.0.1/enroll/oidc/callback",
        policy=UrlPolicy(allow_loopback=True),
    )


def claims_for(client: oidc.Client, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": client.issuer,
        "sub": "248289761001",
        "aud": client.client_id,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
        "email": "eve@example.com",
        "email_verified": True,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def verify(client: oidc.Client, token: str) -> oidc.IdTokenClaims:
    return oidc.verify_id_token(client, oidc.discover(client), {"id_token": token}, nonce=NONCE)


def signed(claims: dict[str, object], key: RSAKey = SIGNING_KEY) -> str:
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def test_a_good_token_gives_the_verified_email(client):
    assert verify(client, signed(claims_for(client))) == oidc.IdTokenClaims(
        subject="248289761001", email="eve@example.com", email_verified=True
    )
    unverified = verify(client, signed(claims_for(client, email_verified="true")))
    assert unverified.email_verified is False  # only the JSON boolean true counts


@pytest.mark.parametrize(
    ("changes", "verified"),
    [
        # Entra ID sends no email_verified; its optional xms_edov says the tenant verified
        # the email's domain.
        ({"email_verified": None, "xms_edov": True}, True),
        ({"email_verified": None, "xms_edov": False}, False),
        ({"email_verified": None, "xms_edov": "true"}, False),  # only the JSON boolean
        ({"email_verified": None, "xms_edov": 1}, False),
        ({"email_verified": None}, False),
        # A provider that says false is believed, whatever else the token carries.
        ({"email_verified": False, "xms_edov": True}, False),
        ({"email_verified": True, "xms_edov": False}, True),
    ],
)
def test_entra_ids_xms_edov_vouches_only_without_email_verified(client, changes, verified):
    claims = verify(client, signed(claims_for(client, **changes)))
    assert claims.email_verified is verified


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.example.com"},
        {"aud": "another-client"},
        {"exp": int(time.time()) - 600},
        {"nonce": "replayed-nonce"},
        {"nonce": None},
        {"sub": None},
    ],
    ids=["iss", "aud", "exp", "nonce", "no-nonce", "no-sub"],
)
def test_a_wrong_claim_is_refused(client, changes):
    with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
        verify(client, signed(claims_for(client, **changes)))


@pytest.mark.parametrize("sub", ["", "s" * 256], ids=["empty", "256-characters"])
def test_a_sub_that_names_nobody_is_refused(client: oidc.Client, sub: str) -> None:
    """The subject is who signed in (the console binds it, in 255 characters): OpenID Connect
    Core 1.0 section 2 allows neither an empty one nor a longer one."""
    with pytest.raises(oidc.OidcError, match="sub is empty or longer than 255"):
        verify(client, signed(claims_for(client, sub=sub)))
    assert verify(client, signed(claims_for(client, sub="s" * 255))).subject == "s" * 255


def test_a_forged_signature_or_a_symmetric_one_is_refused(client):
    with pytest.raises(oidc.OidcError):
        verify(client, signed(claims_for(client), IMPOSTOR_KEY))
    secret = OctKey.import_key(client.client_secret)
    hmac_signed = jwt.encode({"alg": "HS256"}, claims_for(client), secret)
    with pytest.raises(oidc.OidcError):
        verify(client, hmac_signed)


def test_a_discovery_document_for_another_issuer_is_refused(client, httpserver):
    other = oidc.Client(**{**client.__dict__, "issuer": client.issuer + "-other"})
    httpserver.expect_request("/issuer-other/.well-known/openid-configuration").respond_with_json(
        {"issuer": client.issuer}
    )
    with pytest.raises(oidc.OidcError, match="names another issuer"):
        oidc.discover(other)


def test_a_provider_on_a_refused_address_is_not_called(client):
    public_only = oidc.Client(**{**client.__dict__, "policy": UrlPolicy()})
    with pytest.raises(oidc.OidcError, match="could not be read"):
        oidc.discover(public_only)


def test_userinfo_about_another_subject_is_refused(client, httpserver):
    httpserver.expect_request("/issuer/userinfo").respond_with_json(
        {"sub": "someone-else", "email": "eve@example.com", "email_verified": True}
    )
    metadata = {**oidc.discover(client), "userinfo_endpoint": client.issuer + "/userinfo"}
    from_id_token = oidc.IdTokenClaims(subject="248289761001", email=None, email_verified=False)
    with pytest.raises(oidc.OidcError, match="another subject"):
        oidc._with_userinfo(client, metadata, {"access_token": "at"}, from_id_token)


def _part(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def hmac_signed(claims: dict[str, object], secret: bytes) -> str:
    """HS256 made by hand: joserfc itself refuses a public key as an HMAC secret."""
    signing_input = f"{_part({'alg': 'HS256', 'kid': 'k1'})}.{_part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def unsigned(claims: dict[str, object]) -> str:
    return f"{_part({'alg': 'none', 'kid': 'k1'})}.{_part(claims)}."


def test_an_unsigned_token_or_one_keyed_with_the_public_key_is_refused(client):
    with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
        verify(client, unsigned(claims_for(client)))
    # Algorithm confusion: HS256 keyed with the provider's public key, which anyone can fetch.
    for secret in (SIGNING_KEY.as_pem(private=False), json.dumps(SIGNING_KEY.as_dict()).encode()):
        with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
            verify(client, hmac_signed(claims_for(client), secret))


def test_a_key_not_in_the_jwks_is_refused_after_one_fetch(client, httpserver):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rotated-away"})
    before = len([r for r, _ in httpserver.log if r.path.endswith("/jwks")])
    with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
        verify(
            client,
            jwt.encode({"alg": "RS256", "kid": "rotated-away"}, claims_for(client), stranger),
        )
    assert len([r for r, _ in httpserver.log if r.path.endswith("/jwks")]) == before + 1


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({"aud": ["odock"]}, True),
        ({"aud": ["odock", "another-client"], "azp": "odock"}, True),
        ({"aud": ["odock", "another-client"]}, False),  # whose token is this? azp must say
        ({"aud": ["odock", "another-client"], "azp": "another-client"}, False),
        ({"azp": "another-client"}, False),
    ],
    ids=["one-in-list", "many-with-azp", "many-without-azp", "many-azp-other", "azp-other"],
)
def test_an_audience_shared_with_another_client_needs_azp_naming_us(client, changes, accepted):
    token = signed(claims_for(client, **changes))
    if accepted:
        assert verify(client, token).subject == "248289761001"
    else:
        with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
            verify(client, token)


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": int(time.time()) + 3600},
        {"nbf": int(time.time()) + 3600},
        {"iat": None},
        {"exp": None},
        {"exp": int(time.time()) - 120},
    ],
    ids=["iat-future", "nbf-future", "no-iat", "no-exp", "expired-past-leeway"],
)
def test_times_beyond_the_leeway_are_refused(client, changes):
    with pytest.raises(oidc.OidcError, match="the ID token is not valid"):
        verify(client, signed(claims_for(client, **changes)))


def test_times_within_the_leeway_are_taken(client):
    now = int(time.time())
    token = signed(claims_for(client, iat=now + 30, nbf=now + 30, exp=now - 30))
    assert verify(client, token).subject == "248289761001"


# A bounded read ends at its 0.5 s deadline; an unbounded one reads the whole 6 s trickle.
# Between the two, room for a loaded machine.
TRICKLING = "trickling"  # an answer whose body comes a byte at a time (TrickledBody)


@pytest.mark.parametrize(
    "answer",
    [
        Response(json.dumps({"keys": [], "pad": "x" * 300_000}), content_type="application/json"),
        Response(b"\x00\xff<html>not json", content_type="application/json"),
        Response(json.dumps([1, 2, 3]), content_type="application/json"),
        Response("{}", status=500),
        TRICKLING,
    ],
    ids=["huge", "garbage", "not-an-object", "error", "trickling"],
)
def test_a_jwks_that_is_huge_garbage_or_hangs_is_refused_in_bounded_time(
    client, httpserver, answer
):
    """Refused within the client's timeout: a JWKS trickling in (each byte within the read
    timeout, the whole a minute long) is given up on while it is still coming."""
    issuer = serve_discovery(httpserver, "/bad-jwks")
    handler = httpserver.expect_request("/bad-jwks/jwks")
    impatient = oidc.Client(**{**client.__dict__, "issuer": issuer, "timeout": 0.5})
    with answered(handler, answer) as trickle:
        with pytest.raises(oidc.OidcError, match=r"JWKS (could not be read|is not a JSON object)"):
            verify(impatient, signed(claims_for(impatient)))
        assert not trickle.ended.is_set(), "the refusal waited for the whole JWKS"


def test_a_jwks_cut_short_is_refused_as_unreadable(
    client: oidc.Client, httpserver: HTTPServer
) -> None:
    """The body read bounded from the raw stream: a connection closed before the length the
    answer announced is the provider's failure, not an error escaping the sign-in."""
    listener = socket.create_server(("127.0.0.1", 0))

    def cut_short() -> None:
        with listener, listener.accept()[0] as connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")

    server = threading.Thread(target=cut_short, daemon=True)
    server.start()
    issuer = serve_discovery(
        httpserver, "/cut-jwks", jwks_uri=f"http://127.0.0.1:{listener.getsockname()[1]}/jwks"
    )
    cut = oidc.Client(**{**client.__dict__, "issuer": issuer})
    with pytest.raises(oidc.OidcError, match="JWKS could not be read"):
        verify(cut, signed(claims_for(cut)))
    server.join(5)


@pytest.mark.parametrize(
    ("field", "value", "taken"),
    [
        ("token_endpoint", "https://oauth2.googleapis.com/token", True),  # another host
        ("token_endpoint", "http://idp.example.com/token", False),
        ("jwks_uri", "http://idp.example.com/jwks", False),
        ("authorization_endpoint", "javascript:alert(1)", False),
        ("userinfo_endpoint", "http://idp.example.com/userinfo", False),
        ("userinfo_endpoint", 42, False),
    ],
)
def test_an_https_issuers_endpoints_must_be_https(field: str, value: object, taken: bool) -> None:
    """The client secret and the code go to the token endpoint the issuer's document names."""
    metadata = {name: f"https://idp.example.com/{name}" for name in oidc.ENDPOINTS}
    metadata[field] = value  # type: ignore[assignment]
    if taken:
        oidc.check_endpoints("https://idp.example.com", metadata)
    else:
        with pytest.raises(oidc.OidcError, match=f"{field} is not an https URL"):
            oidc.check_endpoints("https://idp.example.com", metadata)


@pytest.mark.parametrize(
    "answer",
    [
        Response(json.dumps({"id_token": "x" * 300_000}), content_type="application/json"),
        TRICKLING,
    ],
    ids=["huge", "trickling"],
)
def test_a_token_endpoint_that_is_huge_or_hangs_is_refused_in_bounded_time(
    client: oidc.Client, httpserver: HTTPServer, answer: Response | str
) -> None:
    """As the JWKS: a token answer trickling in is given up on while it is still coming."""
    handler = httpserver.expect_request("/issuer/token", method="POST")
    impatient = oidc.Client(**{**client.__dict__, "timeout": 0.5})
    with answered(handler, answer) as trickle:
        with pytest.raises(oidc.OidcError, match="refused the sign-in code"):
            oidc.finish(impatient, code="c", code_verifier="v" * 43, nonce=NONCE)
        assert not trickle.ended.is_set(), "the refusal waited for the whole answer"


@contextmanager
def answered(handler: RequestHandler, answer: Response | str) -> Iterator[TrickledBody]:
    """The handler answers `answer`, or, for TRICKLING, with a body trickling in (yielded;
    a whole answer's `ended` is never set, nothing of it comes late)."""
    trickle = TrickledBody()
    if answer == TRICKLING:
        handler.respond_with_handler(trickle)
    else:
        assert isinstance(answer, Response)
        handler.respond_with_response(answer)
    try:
        yield trickle
        assert answer != TRICKLING or trickle.started.is_set(), "the answer was never asked for"
    finally:
        trickle.release()


def test_a_provider_offering_only_symmetric_or_no_signatures_is_refused(
    client: oidc.Client, httpserver: HTTPServer
) -> None:
    """Nothing this service accepts among the algorithms offered is a refusal, not joserfc's
    defaults (an empty list of algorithms lets it take HS256 with an oct key of the JWKS,
    which anyone can read)."""
    issuer = serve_discovery(
        httpserver, "/symmetric", id_token_signing_alg_values_supported=["HS256", "none"]
    )
    published = OctKey.generate_key(256, parameters={"kid": "shared"})
    httpserver.expect_request("/symmetric/jwks").respond_with_json(
        KeySet([published]).as_dict(private=True)
    )
    symmetric = oidc.Client(**{**client.__dict__, "issuer": issuer})
    forged = jwt.encode({"alg": "HS256", "kid": "shared"}, claims_for(symmetric), published)
    with pytest.raises(oidc.OidcError, match="no signing algorithm"):
        verify(symmetric, forged)
