"""One id per request: the caller's X-Request-Id when sane, else a new one; echoed back."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Request, Response

from models import request_ids

HEADER = "X-Request-Id"
ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # the header as WSGI hands it over


def begin(state: Any, req: Request) -> None:
    """Bind the request's id (`state` is the request's `g`): run first, so every later hook,
    audit event and log line sees it (webhooks.request_hooks)."""
    request_id = request_ids.acceptable(req.environ.get(ENVIRON_KEY))
    request_id = request_id or request_ids.new_request_id()
    state.request_id = request_id
    state.request_id_token = request_ids.bind(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def echo(state: Any, response: Response) -> None:
    request_id = state.get("request_id")
    if request_id is not None:
        response.headers[HEADER] = request_id


def end(state: Any) -> None:
    token = state.pop("request_id_token", None)
    if token is not None:
        request_ids.reset(token)
    structlog.contextvars.unbind_contextvars("request_id")
