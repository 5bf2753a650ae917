"""Problem JSON (RFC 9457) for every error of the admin API; never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from models import errors

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
    if isinstance(error, errors.RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="odock-sync"'
    return response


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
    for name in ("Allow", "Retry-After"):
        if error.get_response().headers.get(name):
            response.headers[name] = error.get_response().headers[name]
    return response


def unexpected_problem(error: Exception) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    log.exception("request.failed", route=route, error_type=type(error).__name__)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


ErrorRenderer = Callable[[Exception], Response]

# Protocols with their own error format (SCIM JSON, HTML pages) claim a URL prefix here;
# everything else answers problem JSON.
PROTOCOL_RENDERERS: list[tuple[str, ErrorRenderer]] = []


def register_protocol_renderer(prefix: str, renderer: ErrorRenderer) -> None:
    PROTOCOL_RENDERERS.append((prefix, renderer))


def render_error(default: Callable[[Any], Response]) -> Callable[[Exception], Response]:
    def handle(error: Exception) -> Response:
        for prefix, renderer in PROTOCOL_RENDERERS:
            if request.path.startswith(prefix):
                return renderer(error)
        return default(error)

    return handle


def register_problem_handlers(app: Flask) -> None:
    app.register_error_handler(errors.DomainError, render_error(domain_problem))
    app.register_error_handler(ValidationError, render_error(validation_problem))
    app.register_error_handler(HTTPException, render_error(http_problem))
    app.register_error_handler(Exception, render_error(unexpected_problem))
