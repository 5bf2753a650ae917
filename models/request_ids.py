"""The id of the request (or task) being served, carried into audit events and queued tasks.

The web layer binds one per request (the caller's `X-Request-Id` when it is sane, else a new
one); the outbox stores it with each message and the worker binds it again while the task
runs, so a change made later by a task is traced to the request that caused it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar, Token

_CURRENT: ContextVar[str | None] = ContextVar("odock_request_id", default=None)
ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:\-]{8,64}$")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def acceptable(value: str | None) -> str | None:
    """A caller's id if it is safe to store and log as is (no spaces, no markup, bounded)."""
    return value if value and ACCEPTABLE.match(value) else None


def current() -> str | None:
    return _CURRENT.get()


def bind(request_id: str | None) -> Token[str | None]:
    return _CURRENT.set(request_id)


def reset(token: Token[str | None]) -> None:
    _CURRENT.reset(token)
