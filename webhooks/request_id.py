"""One id per request: the caller's X-Request-Id when sane, else a new one; echoed back."""

from __future__ import annotations

import structlog
from flask import Flask, Response, g, request

from models import request_ids

HEADER = "X-Request-Id"


def install(app: Flask) -> None:
    """Registered first, so every later hook, audit event and log line sees the id."""

    @app.before_request
    def _bind() -> None:
        request_id = request_ids.acceptable(request.headers.get(HEADER))
        request_id = request_id or request_ids.new_request_id()
        g.request_id = request_id
        g.request_id_token = request_ids.bind(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers[HEADER] = request_id
        return response

    @app.teardown_request
    def _unbind(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_ids.reset(token)
        structlog.contextvars.unbind_contextvars("request_id")
