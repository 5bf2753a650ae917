"""An OpenID Connect relying party on Authlib: the issuer's discovery document, the
authorization request (Authorization Code with PKCE S256, state and nonce), the code
exchange, and the ID token checked against the issuer's JWKS (signature, iss, aud, exp, nonce).
Whether an authorization response is for this provider at all (its `iss`, RFC 9207, and the
callback it arrived at) is decided before `finish`, by models/actions/oidc_answers.py.

Every call goes through the outbound address policy (connectors/outbound.py): the issuer is
an organisation admin's choice, like a notification hook.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from connectors.outbound import BodyRefused, UrlPolicy, pin, pinned_session, read_bounded

SCOPE = "openid email"
# Asymmetric signatures only: "none" proves nothing, and an HMAC under the client secret
# would let anyone holding that secret mint tokens.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
CLOCK_LEEWAY_SECONDS = 60
MAX_SUBJECT = 255
# Microsoft Entra ID's optional claim "email domain owner verified" (it sends no email_verified).
ENTRA_DOMAIN_OWNER_VERIFIED = "xms_edov"
# A discovery document, JWKS or userinfo answer is a few kilobytes; a provider that hangs or
# sends more is cut off, each read within the client's timeout, all of it within that too.
MAX_DOCUMENT_BYTES = 256 * 1024
NAME_LISTS = ("id_token_signing_alg_values_supported", "token_endpoint_auth_methods_supported")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")


class OidcError(Exception):
    """The provider could not be used or its answer is not acceptable; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Client:
    """This service as a client of one provider."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    policy: UrlPolicy
    timeout: float = 10.0


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what the callback needs back to finish."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class IdTokenClaims:
    subject: str
    email: str | None
    email_verified: bool


def authorization_request(client: Client, *, ask_again: bool = False) -> AuthorizationRequest:
    """A fresh state, nonce and PKCE verifier, and the provider's authorization URL;
    `ask_again` makes the provider ask who signs in even if someone already is."""
    metadata = discover(client)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    extra = {"prompt": "login"} if ask_again else {}
    with _session(client, metadata) as session:
        url, _ = session.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            **extra,
        )
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)


def finish(
    client: Client,
    *,
    code: str,
    code_verifier: str,
    nonce: str,
    metadata: dict[str, Any] | None = None,
) -> IdTokenClaims:
    """Exchange the code, then verify the ID token; OidcError if anything does not hold.
    `metadata` is the provider's discovery document, if already read."""
    metadata = metadata if metadata is not None else discover(client)
    with _session(client, metadata) as session:
        try:
            token = session.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                timeout=client.timeout,
            )
        except (AuthlibBaseError, requests.RequestException, BodyRefused, ValueError) as exc:
            raise OidcError(f"the provider refused the sign-in code ({_brief(exc)})") from None
    if "id_token" not in token:
        raise OidcError("the provider sent no ID token")
    claims = verify_id_token(client, metadata, token, nonce=nonce)
    if claims.email is None and metadata.get("userinfo_endpoint"):
        return _with_userinfo(client, metadata, token, claims)
    return claims


def always_sends_issuer(metadata: Mapping[str, Any]) -> bool:
    """Whether the discovery document says every authorization response carries `iss`."""
    return metadata.get("authorization_response_iss_parameter_supported") is True


def verify_id_token(
    client: Client, metadata: dict[str, Any], token: dict[str, Any], *, nonce: str
) -> IdTokenClaims:
    jwks: Any = _get_json(client, metadata["jwks_uri"], "JWKS")
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [name for name in offered if name in SIGNING_ALGORITHMS]
    if not algorithms:  # joserfc reads an empty list as its defaults, HS256 among them
        raise OidcError("the provider offers no signing algorithm this service accepts")
    try:
        keys = KeySet.import_key_set(jwks)
        decoded = jwt.decode(token["id_token"], keys, algorithms=algorithms)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": client.issuer},
                "aud": {"essential": True, "value": client.client_id},
            },
            {
                "nonce": nonce,
                "client_id": client.client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OidcError(f"the ID token is not valid ({_brief(exc)})") from None
    subject = claims["sub"]
    # OpenID Connect Core 1.0 section 2: at most 255 ASCII characters; it is who signed in.
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise OidcError("the ID token's sub is empty or longer than 255 characters")
    email = claims.get("email")
    return IdTokenClaims(
        subject=subject,
        email=email if isinstance(email, str) else None,
        email_verified=email_verified(claims),
    )


def _with_userinfo(
    client: Client, metadata: dict[str, Any], token: dict[str, Any], claims: IdTokenClaims
) -> IdTokenClaims:
    """The email from the userinfo endpoint, for providers that keep it out of the ID token
    when they also issue an access token; only if it speaks of the same subject."""
    bearer = {"Authorization": f"Bearer {token.get('access_token', '')}"}
    info = _get_json(client, metadata["userinfo_endpoint"], "userinfo", headers=bearer)
    if info.get("sub") != claims.subject:
        raise OidcError("the provider's userinfo is about another subject")
    email = info.get("email")
    return IdTokenClaims(
        subject=claims.subject,
        email=email if isinstance(email, str) else None,
        email_verified=email_verified(info),
    )


def email_verified(claims: Mapping[str, Any]) -> bool:
    """Whether the provider vouches for the email: `email_verified` is the JSON boolean true,
    or, only when `email_verified` is absent, Entra ID's optional `xms_edov` claim (the email's
    domain is verified by the tenant the account lives in) is true. Entra ID never sends
    `email_verified`; a provider that sends it false is believed, whatever else it sends."""
    if "email_verified" in claims:
        return claims["email_verified"] is True
    return claims.get(ENTRA_DOMAIN_OWNER_VERIFIED) is True


def discover(client: Client) -> dict[str, Any]:
    """The issuer's discovery document, checked to name this very issuer."""
    url = client.issuer.rstrip("/") + "/.well-known/openid-configuration"
    metadata = _get_json(client, url, "discovery document")
    if metadata.get("issuer") != client.issuer:
        raise OidcError("the discovery document names another issuer")
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(field), str):
            raise OidcError(f"the discovery document has no {field}")
    for field in NAME_LISTS:
        value = metadata.get(field)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(name, str) for name in value)
        ):
            raise OidcError(f"the discovery document's {field} is not a list of names")
    check_endpoints(client.issuer, metadata)
    return metadata


def check_endpoints(issuer: str, metadata: Mapping[str, Any]) -> None:
    """An https issuer's endpoints are https too: the client secret, the code and the tokens
    never travel in clear. Another host is allowed (Google's token endpoint and JWKS are on
    googleapis.com): the issuer's own document names them, and the outbound policy applies."""
    if urlsplit(issuer).scheme != "https":
        return  # plain http is only ever allowed on loopback, for trials
    for field in ENDPOINTS:
        value = metadata.get(field)
        if value is not None and (not isinstance(value, str) or urlsplit(value).scheme != "https"):
            raise OidcError(f"the discovery document's {field} is not an https URL")


def _get_json(
    client: Client, url: str, what: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + client.timeout
    with pinned_session(client.policy) as session:
        try:
            with session.get(url, headers=headers, timeout=client.timeout, stream=True) as response:
                response.raise_for_status()
                raw = read_bounded(response, max_bytes=MAX_DOCUMENT_BYTES, deadline=deadline)
            body = json.loads(raw)
        except (requests.RequestException, BodyRefused, ValueError) as exc:
            raise OidcError(f"the provider's {what} could not be read ({_brief(exc)})") from None
    if not isinstance(body, dict):
        raise OidcError(f"the provider's {what} is not a JSON object")
    return body


def _session(client: Client, metadata: dict[str, Any]) -> OAuth2Session:
    supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"
    session = OAuth2Session(
        client.client_id,
        client.client_secret,
        scope=SCOPE,
        redirect_uri=client.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
    )
    session.hooks["response"].append(_read_within_bounds(client))
    return pin(session, client.policy)


def _read_within_bounds(client: Client) -> Callable[..., requests.Response]:
    """A response hook reading the token endpoint's answer as _get_json reads the others:
    Authlib reads it whole, however large, for as long as it trickles. Hooks run before
    requests reads the body, so the body read here is the one Authlib parses."""

    def read(response: requests.Response, **_: Any) -> requests.Response:
        deadline = time.monotonic() + client.timeout
        body = read_bounded(response, max_bytes=MAX_DOCUMENT_BYTES, deadline=deadline)
        response._content = body  # requests' cache of the read body: content is not read again
        return response

    return read


def _brief(error: Exception) -> str:
    text = str(getattr(error, "description", "") or error) or type(error).__name__
    return text[:200]
