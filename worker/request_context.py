"""While a task runs, its causing request's id is current (audit events and logs carry it)."""

from __future__ import annotations

from contextvars import Token
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun

from models import request_ids
from worker.outbox_relay import REQUEST_ID_HEADER

_BOUND: dict[str, Token[str | None]] = {}


@task_prerun.connect
def _bind(task_id: str = "", task: Any = None, **_kwargs: Any) -> None:
    given = getattr(getattr(task, "request", None), REQUEST_ID_HEADER, None)
    # A scheduled task has no causing request: its own id ties together what it changes.
    request_id = request_ids.acceptable(given) or request_ids.new_request_id()
    _BOUND[task_id] = request_ids.bind(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


@task_postrun.connect
def _unbind(task_id: str = "", **_kwargs: Any) -> None:
    token = _BOUND.pop(task_id, None)
    if token is not None:
        request_ids.reset(token)
    structlog.contextvars.unbind_contextvars("request_id")
