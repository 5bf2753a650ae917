"""Shared task options: late acks, idempotent bodies, retries with backoff."""

from __future__ import annotations

from typing import Any

from worker.celery_app import celery_app


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
    return celery_app.task(name=name, **{**TASK_DEFAULTS, **options})
