"""Coalesced wake-ups: ask a worker to drain stored work without one task per request.

A wake-up carries no state: the work it points at is already committed in its own rows, and a
periodic sweep wakes the task again for rows left waiting. On a Redis broker a short-lived flag
per wake-up marks it as sent and not yet taken; while the flag is up, further identical
wake-ups are dropped. The task lowers the flag (`taken`) before its last read of its work, so
whatever commits after that raises the flag again and wakes it once more: nothing is left behind.
A dropped wake-up relies on the task behind the flag, so a flag must not outlive it: the task
lowers it when it fails too, a task that finds another at work keeps it only briefly (`hold`),
and a flag whose task was lost with its worker expires by the time the sweep looks.
On other brokers every wake-up is sent.
"""

from __future__ import annotations

import functools

import redis
import structlog

from worker.celery_app import celery_app

log = structlog.get_logger(__name__)

# A flag outlives a lost wake-up task by at most this long; then the next request goes through.
# No longer than the age at which the sweep wakes a task for work left waiting, so the sweep's
# own wake-up never meets the flag of a task lost before that work was stored.
FLAG_TTL_SECONDS = 10


def wake(task: str, kwargs: dict[str, str]) -> None:
    """Send `task(**kwargs)` unless an identical wake-up is already waiting to be taken."""
    key = _flag_key(task, kwargs)
    if not _raise_flag(key):
        return
    try:
        celery_app.send_task(task, kwargs=kwargs, retry=False)
    except Exception:  # the broker is down: the periodic sweep wakes the task later
        log.warning("wakeup.publish_failed", task=task)
        _lower_flag(key)


def taken(task: str, kwargs: dict[str, str]) -> None:
    """Called by the woken task before it reads its work."""
    _lower_flag(_flag_key(task, kwargs))


def hold(task: str, kwargs: dict[str, str], seconds: float) -> None:
    """Keep a raised flag up for at most `seconds` more (a lowered one stays down): a task
    woken while another runs the same work leaves it to that one, which lowers the flag before
    its last read. Should that one die first, later wake-ups go through once this runs out."""
    flags = _flags(_broker_url())
    if flags is None:
        return
    try:
        flags.set(_flag_key(task, kwargs), 1, ex=max(1, round(seconds)), xx=True)
    except redis.RedisError:
        log.warning("wakeup.flag_not_held", task=task)  # it expires on its own


def _raise_flag(key: str) -> bool:
    """True when this wake-up must be sent (no flag was up, or there are no flags)."""
    flags = _flags(_broker_url())
    if flags is None:
        return True
    try:
        return bool(flags.set(key, 1, nx=True, ex=FLAG_TTL_SECONDS))
    except redis.RedisError:
        return True


def _lower_flag(key: str) -> None:
    flags = _flags(_broker_url())
    if flags is None:
        return
    try:
        flags.delete(key)
    except redis.RedisError:
        log.warning("wakeup.flag_not_lowered", key=key)  # it expires on its own


def _flag_key(task: str, kwargs: dict[str, str]) -> str:
    arguments = ",".join(f"{name}={value}" for name, value in sorted(kwargs.items()))
    return f"odock:wakeup:{celery_app.conf.task_default_queue}:{task}:{arguments}"


def _broker_url() -> str:
    """The broker this process publishes to, as configure_celery set it. Not `broker_url`:
    Celery lets a CELERY_BROKER_URL environment variable win over that, and a process whose
    settings name another broker (a test run's Redis database of its own) raised its flags in
    one database while its workers lowered them in another: the flag stayed up its whole TTL
    and every wake-up meanwhile was dropped."""
    return str(celery_app.conf.broker_write_url or celery_app.conf.broker_url or "")


@functools.cache
def _flags(broker_url: str) -> redis.Redis | None:
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)
