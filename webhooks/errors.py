"""Problem JSON (RFC 9457) for every error of the admin API; never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from models import errors
from models.db import database_error_facts, is_unavailable
from webhooks.context import app_state

log = structlog.get_logger(__name__)

STATUS_BY_ERROR: list[tuple[type[errors.DomainError], int]] = [
    (errors.NotFound, 404),
    (errors.Forbidden, 403),
    (errors.UnknownReference, 422),
    (errors.InvalidInput, 400),
    (errors.RateLimited, 429),
    (errors.PreconditionFailed, 412),
    (errors.Conflict, 409),
    (errors.Unavailable, 503),
]


# The members RFC 9457 defines; an error's details never overwrite them.
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


class Unauthorized(errors.DomainError):
    code = "unauthorized"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def status_of(error: errors.DomainError) -> int:
    if isinstance(error, Unauthorized):
        return 401
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(error, kind)), 400)


def domain_problem(error: errors.DomainError) -> Response:
    status = status_of(error)
    extra = {
        key: value
        for key, value in error.details.items()
        if value is not None and key not in PROBLEM_MEMBERS
    }
    response = problem(status, error.code, error.message, **extra)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="odock-sync"'
    return response


def said_when_to_retry(response: Response, error: errors.DomainError) -> None:
    """A refusal that passes (too many requests, a busy database) tells the client when to
    send the request again, whatever the protocol's format."""
    if isinstance(error, errors.RateLimited | errors.Busy):
        response.headers["Retry-After"] = str(error.retry_after)


def validation_problem(error: ValidationError) -> Response:
    fields = [
        {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    return problem(
        400, "invalid_input", "the request body does not match the schema", errors=fields
    )


def http_problem(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description or error.name
    response = problem(status, error.name.lower().replace(" ", "_"), detail)
    for name in ("Allow", "Retry-After", "Accept-Encoding"):
        if error.get_response().headers.get(name):
            response.headers[name] = error.get_response().headers[name]
    return response


def unexpected_problem(error: Exception) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    log.exception("request.failed", route=route, error_type=type(error).__name__)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


# A request the database could not serve in time is worth sending again this much later.
BUSY_RETRY_AFTER_SECONDS = 1


def database_problem(error: Exception) -> Response:
    """A request the database could not serve in time is told so, busy rather than broken
    (its transaction was rolled back: nothing of it was kept), with a Retry-After whichever
    protocol renders it; any other database error is a bug, answered as one."""
    if isinstance(error, DBAPIError) and not is_unavailable(error):
        return render_error(unexpected_problem)(error)
    route = request.url_rule.rule if request.url_rule else "unmatched"
    facts = database_error_facts(error)
    if isinstance(error, PoolTimeout):  # every connection of the pool was in use meanwhile
        facts["pool"] = app_state().engine.pool.status()
    log.warning("request.database_busy", route=route, **facts)
    busy = errors.Busy(
        "the database is busy; send the request again", retry_after=BUSY_RETRY_AFTER_SECONDS
    )
    return render_error(domain_problem)(busy)


ErrorRenderer = Callable[[Exception], Response]

# Protocols with their own error format (SCIM JSON, HTML pages) claim a URL prefix here;
# everything else answers problem JSON.
PROTOCOL_RENDERERS: list[tuple[str, ErrorRenderer]] = []


def register_protocol_renderer(prefix: str, renderer: ErrorRenderer) -> None:
    PROTOCOL_RENDERERS.append((prefix, renderer))


def render_error(default: Callable[[Any], Response]) -> Callable[[Exception], Response]:
    """The error in the format of the protocol the request spoke (problem JSON by default),
    with a Retry-After when it passes, whichever renders it."""

    def handle(error: Exception) -> Response:
        renderer = next(
            (
                renderer
                for prefix, renderer in PROTOCOL_RENDERERS
                if request.path.startswith(prefix)
            ),
            default,
        )
        response = renderer(error)
        if isinstance(error, errors.DomainError):
            said_when_to_retry(response, error)
        return response

    return handle


def register_problem_handlers(app: Flask) -> None:
    app.register_error_handler(errors.DomainError, render_error(domain_problem))
    app.register_error_handler(ValidationError, render_error(validation_problem))
    app.register_error_handler(HTTPException, render_error(http_problem))
    # Not only OperationalError: a connection SQLAlchemy saw die may surface as another
    # DBAPIError (InterfaceError: the connection is closed).
    app.register_error_handler(DBAPIError, database_problem)
    app.register_error_handler(PoolTimeout, database_problem)
    app.register_error_handler(Exception, render_error(unexpected_problem))
