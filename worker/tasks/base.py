"""Shared task options: late acks, idempotent bodies, retries with backoff.

Every task registered here retries a database that is unavailable for now (a connection
refused or dropped, too many clients, a server restarting, SQLite locked past its busy
timeout), whatever its own retry options: its work is transactional or re-reads stored state,
so running it again is safe. Any other database error is a bug and fails at once.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from typing import Any

import structlog
from celery import current_task

from models.backoff import backoff
from models.db import database_error_facts, is_unavailable
from worker.celery_app import celery_app
from worker.runtime import runtime

log = structlog.get_logger(__name__)

DATABASE_RETRY_BASE = 1.0  # seconds before the first retry, doubling after each
DATABASE_RETRY_MAX = 60.0


class TransientError(Exception):
    """A failure worth retrying later: a server down, a timeout, a 5xx."""


TASK_DEFAULTS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientError,),
    "retry_backoff": 2,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": None,
}


def task(name: str, **options: Any) -> Any:
    """Register a task under a stable name with the shared options."""

    def register(body: Callable[..., Any]) -> Any:
        return celery_app.task(name=name, **{**TASK_DEFAULTS, **options})(_retrying(body))

    return register


def _retrying(body: Callable[..., Any]) -> Callable[..., Any]:
    """The body, retried later when the database is unavailable (`database_retry_delay`), at
    most TASK_DATABASE_RETRIES times; then, or on any other error, it fails as it raised."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exception as error:
            if is_unavailable(error) and _retries_left():
                raise _retry_later(error) from None  # the error is the retry's `exc`
            raise

    # Celery checks a message's arguments against the task's signature: the body's, not *args.
    run.__signature__ = inspect.signature(body)  # type: ignore[attr-defined]
    return run


def _retries_left() -> bool:
    if not current_task or current_task.request.called_directly:
        return False  # a plain call, outside a worker: the caller sees the error
    retries = current_task.request.retries
    if retries < runtime().settings.task_database_retries:
        return True
    log.error("task.database_unavailable", task=current_task.name, retries=retries)
    return False


def _retry_later(error: Exception) -> BaseException:
    """Celery's Retry of the running task, already sent with its countdown."""
    retries = current_task.request.retries
    log.warning(
        "task.database_unavailable_retrying",
        task=current_task.name,
        retries=retries,
        **database_error_facts(error),
    )
    retry: BaseException = current_task.retry(
        exc=error, countdown=database_retry_delay(retries), throw=False
    )
    return retry


def database_retry_delay(retries: int) -> float:
    """Seconds before retry number `retries` + 1: the base doubling up to the cap, then half
    of it fixed and half random, so that the workers a restart failed come back spread out
    and never at once into a server still starting."""
    ceiling = backoff(retries + 1, retry_base=DATABASE_RETRY_BASE, retry_max=DATABASE_RETRY_MAX)
    return ceiling / 2 + random.uniform(0, ceiling / 2)
