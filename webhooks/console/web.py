"""What every console page shares: the session cookie, CSRF, rendering, headers, errors.

The session cookie carries the session's secret, signed and time-stamped (itsdangerous), so
a cookie is checked before the database is asked; the database decides whether the session
is still live (models/actions/console_sessions). Every POST carries a CSRF token bound to the
session (HMAC of its id); the sign-in form, before there is a session, a double-submit token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from models.access import Viewer
from models.actions.console_sessions import ConsoleSession, console_actor, session_viewer
from models.actor import Actor
from models.errors import DomainError, Forbidden
from models.secrets import same_text
from webhooks.api.params import int_param
from webhooks.body import FORM_TYPE, form_fields
from webhooks.context import db_session, settings
from webhooks.errors import register_protocol_renderer, status_of
from webhooks.html_pages import SECURITY_HEADERS

log = structlog.get_logger(__name__)
BodyT = TypeVar("BodyT", bound=BaseModel)

PREFIX = "/console"
SESSION_COOKIE = "odock_console"
SIGN_IN_COOKIE = "odock_console_sign_in"
CSRF_FIELD = "csrf"
PUBLIC_ENDPOINTS = frozenset(
    {
        "console.sign_in_form",
        "console.sign_in",
        "console.oidc_sign_in",
        "console.oidc_callback_page",
        "console.static",
    }
)
# The enrollment pages' headers, with the console's own script and style sheet allowed.
CONSOLE_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

bp = Blueprint(
    "console",
    __name__,
    url_prefix=PREFIX,
    static_folder=str(Path(__file__).with_name("static")),
    static_url_path="/static",
)


@dataclass(frozen=True)
class SignedIn:
    viewer: Viewer
    token_id: uuid.UUID

    @property
    def actor(self) -> Actor:
        return console_actor(self.viewer)


def signed_in() -> SignedIn:
    found: SignedIn = g.console
    return found


@bp.before_request
def require_session() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    found = _session_from_cookie()
    if found is None:
        return redirect(url_for("console.sign_in_form"), code=303)
    g.console = found
    if request.method == "POST":
        check_csrf(expected=csrf_token(found.token_id))
    return None


@bp.after_request
def harden(response: Response) -> Response:
    response.headers.update(CONSOLE_HEADERS)
    return response


def _session_from_cookie() -> SignedIn | None:
    raw = request.cookies.get(SESSION_COOKIE, "")
    if not raw:
        return None
    try:
        secret = _serializer().loads(raw, max_age=int(_lifetime_seconds()))
    except BadSignature:
        return None
    found = session_viewer(db_session(), secret=str(secret))
    return SignedIn(*found) if found else None


def set_session_cookie(response: Response, started: ConsoleSession) -> Response:
    """The session in a signed cookie the page's scripts cannot read, sent only to the console
    (and only over https when the service is reached over https)."""
    response.set_cookie(
        SESSION_COOKIE,
        _serializer().dumps(started.secret),
        max_age=int(_lifetime_seconds()),
        path=PREFIX,
        secure=secure_cookies(),
        httponly=True,
        samesite="Lax",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return response


def clear_session_cookie(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=secure_cookies(), httponly=True)
    return response


def csrf_token(token_id: uuid.UUID) -> str:
    return hmac.new(_key(b"csrf"), token_id.bytes, hashlib.sha256).hexdigest()


def check_csrf(*, expected: str) -> None:
    sent = sent_form().get(CSRF_FIELD, "")
    if not expected or not same_text(sent, expected):
        raise Forbidden(
            "this form is out of date or was not sent from the console; reload the page"
        )


def sign_in_csrf() -> tuple[str, bool]:
    """The double-submit token of the sign-in form, and whether the cookie must be set."""
    current = request.cookies.get(SIGN_IN_COOKIE, "")
    if len(current) == 43:
        return current, False
    return secrets.token_urlsafe(32), True


def set_sign_in_cookie(response: Response, value: str) -> Response:
    response.set_cookie(
        SIGN_IN_COOKIE,
        value,
        path=PREFIX,
        secure=secure_cookies(),
        httponly=True,
        samesite="Strict",
    )
    return response


def page(template: str, *, code: int = 200, **context: Any) -> Response:
    """A console page for the signed-in person, with the CSRF token its forms carry."""
    current: SignedIn | None = g.get("console")
    html = render_template(
        f"console/{template}",
        viewer=current.viewer if current else None,
        csrf=csrf_token(current.token_id) if current else "",
        notice=request.args.get("done", ""),
        **context,
    )
    return Response(html, status=code, mimetype="text/html")


def done(endpoint: str, notice: str, **values: Any) -> Response:
    """After an action: back to a page (POST, redirect, GET), which says what was done."""
    if notice:
        values["done"] = notice
    return redirect(url_for(endpoint, **values), code=303)  # type: ignore[return-value]


def sent_form() -> dict[str, str]:
    """The form a console POST sent, read by the one form reader (webhooks.body); none for a
    request that sends no form, which then has no CSRF token either."""
    return form_fields() if request.mimetype == FORM_TYPE else {}


def form_body(schema: type[BodyT]) -> BodyT:
    """The form's fields read with the API's request schema (its limits, its messages);
    fields left empty are left out, the CSRF token is not part of the body."""
    fields = {
        name: value.strip()
        for name, value in sent_form().items()
        if name != CSRF_FIELD and value.strip() and name in schema.model_fields
    }
    return schema.model_validate(fields)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings().secret_key, salt="odock-sync/console-session")


def _key(purpose: bytes) -> bytes:
    return hashlib.sha256(
        b"odock-sync/console-" + purpose + b"\0" + settings().secret_key.encode()
    ).digest()


def _lifetime_seconds() -> float:
    return settings().console_session_hours * 3600


def secure_cookies() -> bool:
    return request.is_secure or settings().public_base_url.startswith("https://")


def render_error(error: Exception) -> Response:
    """Every error under /console as a page that says what went wrong; never a traceback."""
    if isinstance(error, DomainError):
        status, message = status_of(error), error.message
    elif isinstance(error, ValidationError):
        status, message = 400, "; ".join(_field_message(item) for item in error.errors())
    elif isinstance(error, HTTPException):
        status, message = error.code or 500, error.description or error.name
    else:
        log.exception("console.failed", error_type=type(error).__name__)
        status, message = 500, "Something went wrong; it has been logged. Try again."
    current: SignedIn | None = g.get("console")
    _paths_without_a_host()
    html = render_template(
        "console/error.html",
        viewer=current.viewer if current else None,
        csrf=csrf_token(current.token_id) if current else "",
        status=status,
        message=message,
        back=_back_link(),
    )
    return harden(Response(html, status=status, mimetype="text/html"))


def _paths_without_a_host() -> None:
    """A Host header werkzeug cannot read (a label over 63 characters: BadHost, a 400) leaves
    the request without the URL adapter the page's links are built with, and the page
    itself failed (a 500). The links are paths, whatever the host: bind one for them."""
    if request_ctx.url_adapter is None:
        request_ctx.url_adapter = current_app.url_map.bind(
            "invalid", script_name=request.script_root or None, url_scheme=request.scheme
        )


def _field_message(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"])
    return f"{where}: {item['msg']}" if where else str(item["msg"])


def _back_link() -> str:
    """The page a failed form was sent from: the action's path without its last part."""
    path = request.path
    if request.method == "POST" and path.count("/") > 2:
        path = path.rsplit("/", 1)[0]
    return path if path.startswith(PREFIX) else PREFIX


register_protocol_renderer(PREFIX, render_error)


MAX_OFFSET = 10_000_000  # past any real list; the API's bound


def offset_page(*, default_limit: int) -> tuple[int, int]:
    """The `offset` and `limit` of a paged console list (at most `default_limit` a page)."""
    limit = int_param("limit", default_limit, low=1, high=default_limit)
    return int_param("offset", 0, low=0, high=MAX_OFFSET), limit


def pager(*, offset: int, limit: int, total: int, default_limit: int) -> dict[str, int | None]:
    """The offsets of the pages either side of this one (None: none that way); the links carry
    `limit` only when it is not the default."""
    return {
        "offset": offset,
        "limit": None if limit == default_limit else limit,
        "previous": max(0, offset - limit) if offset > 0 else None,
        "next": offset + limit if offset + limit < total else None,
    }
