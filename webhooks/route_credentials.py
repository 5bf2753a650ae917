"""Which credentials each route takes, in one place, and whether a request's head carries them
in a shape that can succeed. Read by the app (webhooks.request_hooks) and by the web worker
(webhooks.buffering_worker), which asks it before it answers `Expect: 100-continue`: a request
whose credentials are absent or malformed gets its route's final 401 at once, and its body is
never read (RFC 9110 section 10.1.1). Presence and shape only: the route still verifies the
credentials themselves, after the body. By path, as both see it (PATH_INFO)."""

from __future__ import annotations

import re
from enum import StrEnum

from flask import Request

from connectors import signed_webhooks
from models.actions.event_hooks import remembered_hook_credentials
from webhooks.context import settings
from webhooks.errors import Unauthorized


class Credentials(StrEnum):
    NONE = "none"  # public, or a capability in the path (enrollment, OIDC callback, review link)
    BEARER = "bearer"  # Authorization: Bearer <token>
    STANDARD_WEBHOOKS = "standard_webhooks"  # webhook-id, webhook-timestamp, webhook-signature
    OKTA_HOOK = "okta_hook"  # the headers the organisation's Okta hook configuration names
    CONSOLE_SESSION = "console_session"  # the console's cookie; its refusal is a sign-in page


# A path equal to one of these (a trailing slash aside) or under a prefix; the first wins.
ROUTE_CREDENTIALS: tuple[tuple[str, Credentials], ...] = (
    ("/api/v1/openapi.json", Credentials.NONE),
    ("/odock/v1/openapi.json", Credentials.NONE),
    ("/api/v1/", Credentials.BEARER),  # the admin API
    ("/scim/v2/", Credentials.BEARER),
    ("/odock/v1/", Credentials.BEARER),  # the Odock bridge's inbound push
    ("/hooks/okta/", Credentials.OKTA_HOOK),
    ("/hooks/events/", Credentials.STANDARD_WEBHOOKS),
    ("/hooks/enrollment/", Credentials.STANDARD_WEBHOOKS),
    ("/console/", Credentials.CONSOLE_SESSION),
)

# RFC 6750 section 2.1: "Bearer" 1*SP b64token.
BEARER_CREDENTIALS = re.compile(r"bearer +[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
BEARER_REQUIRED = "a valid bearer token is required"
OKTA_HEADERS_REQUIRED = "the authorization header is missing or wrong"


class MissingCredentials(Unauthorized):
    """The head alone shows the route's credentials are absent or malformed: a 401 as the
    route's own refusal of such a request (a receiver renders it its way)."""

    def __init__(self, kind: Credentials, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def credentials_of(path: str) -> Credentials:
    for route, kind in ROUTE_CREDENTIALS:
        if path.rstrip("/") == route or (route.endswith("/") and path.startswith(route)):
            return kind
    return Credentials.NONE


def expects_continue(req: Request) -> bool:
    return req.headers.get("Expect", "").strip().lower() == "100-continue"


def refuse_absent_credentials(req: Request) -> None:
    """Raise MissingCredentials when the request's head cannot authenticate on its route."""
    kind = credentials_of(req.path)
    reason = _missing(kind, req)
    if reason:
        raise MissingCredentials(kind, reason)


def _missing(kind: Credentials, req: Request) -> str | None:
    if kind is Credentials.BEARER:
        header = req.headers.get("Authorization", "").strip()
        return None if BEARER_CREDENTIALS.fullmatch(header) else BEARER_REQUIRED
    if kind is Credentials.STANDARD_WEBHOOKS:
        return signed_webhooks.malformed(dict(req.headers))
    if kind is Credentials.OKTA_HOOK:
        return _okta_headers_missing(req)
    return None


def _okta_headers_missing(req: Request) -> str | None:
    """Which headers an Okta hook sends is the organisation's configuration: known here only
    when the receiver has read it lately (its own cache), never read from the database."""
    slug = (req.view_args or {}).get("slug", "")
    known = remembered_hook_credentials(slug, ttl_seconds=settings().event_hook_cache_seconds)
    if known is None or known.okta_secret_hash is None:
        return None  # unknown, or no hook here: the receiver answers that as it does
    return None if known.okta_headers_present(req.headers) else OKTA_HEADERS_REQUIRED
