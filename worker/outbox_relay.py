"""Hands outbox messages to Celery: at once after commit, and again from a periodic relay.

In the web the after-commit publish runs in a thread of its own (`background`), so a request
never waits on the broker: a broker that refuses costs nothing, and one that accepts
connections and never answers (a blackhole) holds only that thread. What it has not published
stays in the outbox for the relay; the cut-off reaper finds the invalidations and the reviews
in the database whatever the broker lost.

A message is published with the task id `outbox-<id>`; when that task succeeds the message
is marked completed. The periodic relay publishes what was never sent (the broker was down at
commit time) and re-publishes what was sent long ago but never completed (a serverless broker
lost it with a dying worker). Tasks are idempotent, so a second delivery is harmless.

Both claim their messages (mark them dispatched) in a short transaction and publish once it
has committed: no row lock, transaction or pooled connection is held while the broker is
talked to, and the relay's every broker read and write is bounded (BROKER_PUBLISH_TIMEOUT),
so a paused broker holds neither the relay nor the writers of its rows (a task's success
marking its message completed). What was not published is handed back at once; what was
claimed and never published (the process died) is due again once its dispatch is stale.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import structlog
from celery.signals import task_success
from kombu import Producer
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import SessionFactory
from models.entities import OutboxMessage
from models.outbox import (
    claim_due,
    claim_unsent,
    take_eager_messages,
    take_new_messages,
    take_wakeups,
)
from worker import wakeups
from worker.celery_app import celery_app

log = structlog.get_logger(__name__)

TASK_ID_PREFIX = "outbox-"
REQUEST_ID_HEADER = "odock_request_id"
RELAY_BATCH = 500
# Publishes waiting for the publishing thread; past this the broker is clearly not answering,
# and the rest are left to the relay (and the reaper) at once.
BACKGROUND_BACKLOG = 1000
# Celery's own bound on a task's repr in the message (`kwargsrepr_maxsize`).
KWARGS_REPR_MAX = 1024


_RELAYED_FACTORIES: weakref.WeakSet[SessionFactory] = weakref.WeakSet()


class _Publisher:
    """One daemon thread per process that runs the after-commit publishes in order."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=BACKGROUND_BACKLOG)
        self._lock = threading.Lock()
        self._pid = 0

    def submit(self, job: Callable[[], None]) -> bool:
        """False when the backlog is full (the broker is hanging): the caller gives up."""
        self._ensure_thread()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # First use in this process (a gunicorn worker forks after the app is built).
            self._jobs = queue.Queue(maxsize=BACKGROUND_BACKLOG)
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="outbox-publisher", daemon=True).start()

    def _run(self) -> None:
        _PRODUCERS.keeping = True
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # the message stays in the outbox; the relay sends it
                log.exception("outbox.background_publish_failed")


class _Producers(threading.local):
    """The broker producer a thread publishes with. The publishing thread keeps one between
    publishes: taking one from Celery's pool and binding it again for each message was about
    15% of a publish's CPU. Any other thread (a worker's task, a test) takes one from the
    pool for each batch of messages and gives it back."""

    def __init__(self) -> None:
        self.keeping = False
        self.kept: Producer | None = None

    @contextmanager
    def producer(self) -> Iterator[Producer]:
        if not self.keeping:
            with celery_app.producer_or_acquire() as producer:
                yield producer
            return
        if self.kept is None:
            timeout = celery_app.conf.broker_pool_acquire_timeout
            self.kept = celery_app.producer_pool.acquire(block=True, timeout=timeout)
        yield self.kept

    def failed(self) -> None:
        """After a failed publish the kept producer goes back to the pool, as a borrowed one
        does, and the next publish takes one afresh."""
        if self.kept is not None:
            kept, self.kept = self.kept, None
            kept.release()


_PUBLISHER = _Publisher()
_PRODUCERS = _Producers()


def install_after_commit_relay(sessions: SessionFactory, *, background: bool = False) -> None:
    """Publish each transaction's new messages right after it commits (`background`: in the
    publishing thread, the caller does not wait)."""

    def publish(
        wakes: list[tuple[str, dict[str, str]]], eager: list[OutboxMessage], ids: list[int]
    ) -> None:
        for task, kwargs in wakes:
            wakeups.wake(task, kwargs)
        if eager:
            publish_eager(sessions, eager)
        if ids:
            publish_messages(sessions, ids)

    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():  # a SAVEPOINT was released; the commit comes later
            return
        wakes = take_wakeups(session)
        eager = take_eager_messages(session)
        ids = [message.id for message in take_new_messages(session)]
        if not (wakes or eager or ids):
            return
        if not background:
            publish(wakes, eager, ids)
            return
        job = _detached(sessions, publish, wakes, eager, ids)
        if not _PUBLISHER.submit(job):
            log.warning("outbox.background_backlog_full", messages=len(eager) + len(ids))
            hand_back(sessions, {m.id: "publishing backlog full" for m in eager})

    def after_rollback(session: Session) -> None:
        take_new_messages(session)
        take_eager_messages(session)
        take_wakeups(session)

    if sessions in _RELAYED_FACTORIES:  # the hooks are closures: contains() never matches
        return
    _RELAYED_FACTORIES.add(sessions)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(
        sessions,
        "after_soft_rollback",
        lambda s, previous: None if previous.nested else after_rollback(s),
    )


def _detached(
    sessions: SessionFactory,
    publish: Callable[..., None],
    wakes: list[tuple[str, dict[str, str]]],
    eager: list[OutboxMessage],
    ids: list[int],
) -> Callable[[], None]:
    """The publish as a job for the thread: the eager messages as plain copies (the request's
    session and its objects are gone by the time the thread runs)."""
    copies = [
        OutboxMessage(id=m.id, task=m.task, kwargs=dict(m.kwargs), request_id=m.request_id)
        for m in eager
    ]
    return lambda: publish(wakes, copies, ids)


def publish_messages(sessions: SessionFactory, ids: list[int]) -> int:
    """Publish these messages now; any that fail go back to the periodic relay."""
    with sessions() as session:
        claimed = _detached_copies(claim_unsent(session, ids, now=utcnow()))
        session.commit()
    return publish_claimed(sessions, claimed)


def publish_eager(sessions: SessionFactory, messages: list[OutboxMessage]) -> None:
    """Publish messages committed as already dispatched; hand failures back to the relay."""
    failed: dict[int, str] = {}
    try:
        with _PRODUCERS.producer() as producer:
            for message in messages:
                try:
                    _send(message, producer)
                except Exception as exc:  # the broker is down: the periodic relay will send it
                    failed[message.id] = _why(exc)
                    log.warning("outbox.publish_failed", message_id=message.id, task=message.task)
    except Exception as exc:  # no producer to publish with (Celery's pool is exhausted)
        failed |= {message.id: _why(exc) for message in messages if message.id not in failed}
        log.warning("outbox.no_producer", message_ids=list(failed))
    hand_back(sessions, failed)
    if failed:
        _PRODUCERS.failed()


def _send(message: OutboxMessage, producer: Producer | None = None) -> None:
    """Celery's `send_task`, spared work it would redo for each message: with the producer
    given (else it takes one from its pool and binds it), the kwargs' repr for logs and
    monitors made plainly (Celery's `saferepr` walks them in Python), and no queue declared
    (Celery declares the routed queue on every publish; the workers declare theirs, and a
    message published to a queue's name reaches it on Redis and on the embedded broker)."""
    celery_app.send_task(
        message.task,
        kwargs=message.kwargs,
        task_id=f"{TASK_ID_PREFIX}{message.id}",
        retry=False,
        headers=request_header(message.request_id),
        producer=producer,
        argsrepr="()",
        kwargsrepr=repr(message.kwargs)[:KWARGS_REPR_MAX],
        declare=[],
    )


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def hand_back(sessions: SessionFactory, failed: dict[int, str]) -> None:
    """Eager messages not published (message id -> why): the periodic relay sends them."""
    if not failed:
        return
    with sessions() as session:
        for message_id, error in failed.items():
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(dispatched_at=None, last_error=error)
            )
        session.commit()


def request_header(request_id: str | None) -> dict[str, str]:
    """The causing request's id, bound again while the task runs (worker.request_context)."""
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


@celery_app.task(name="outbox.relay", acks_late=True, ignore_result=True)
def relay_outbox() -> int:
    """Publish what is due: never sent, or sent long ago and never completed."""
    from worker.runtime import runtime

    current = runtime()
    settings = current.settings
    now = utcnow()
    with current.sessions() as session:
        claimed = claim_due(
            session,
            now=now,
            stale_before=now - timedelta(seconds=settings.outbox_redispatch_after),
            max_attempts=settings.outbox_max_attempts,
            limit=RELAY_BATCH,
        )
        messages = _detached_copies(claimed)
        session.commit()
    return publish_claimed(current.sessions, messages, timeout=settings.broker_publish_timeout)


def publish_claimed(
    sessions: SessionFactory, messages: list[OutboxMessage], *, timeout: float | None = None
) -> int:
    """Publish messages claimed (marked dispatched) and committed: no transaction is open and
    no row locked while the broker is talked to, each read and write on it bounded by
    `timeout` (Redis). At the first failure the broker is taken as not answering: that message
    and the rest are handed back to the relay. How many were published."""
    published, failed = 0, dict[int, str]()
    try:
        with _bounded_producer(timeout) as producer:
            for message in messages:
                _send(message, producer)
                published += 1
    except Exception as exc:  # the broker is down or not answering: the relay sends them
        failed = {message.id: _why(exc) for message in messages[published:]}
        log.warning("outbox.publish_failed", message_ids=list(failed), error=_why(exc))
    hand_back(sessions, failed)
    return published


@contextmanager
def _bounded_producer(timeout: float | None) -> Iterator[Producer]:
    """A producer whose every read and write on a Redis broker gives up after `timeout`, on
    a connection of its own (a worker's own broker connections wait without limit: a paused
    Redis would hold the relay for good); else one from Celery's pool."""
    url = str(celery_app.conf.broker_write_url or celery_app.conf.broker_url)
    if timeout is None or not url.startswith(("redis://", "rediss://")):
        with celery_app.producer_or_acquire() as producer:
            yield producer
        return
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    with celery_app.connection_for_write(transport_options=options) as connection:
        yield connection.Producer()


def _detached_copies(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """Plain copies to publish once the transaction that claimed them has ended."""
    return [
        OutboxMessage(id=m.id, task=m.task, kwargs=dict(m.kwargs), request_id=m.request_id)
        for m in messages
    ]


@task_success.connect
def _mark_completed(sender: Any = None, **_kwargs: Any) -> None:
    task_id = getattr(getattr(sender, "request", None), "id", None) or ""
    if not task_id.startswith(TASK_ID_PREFIX):
        return
    from worker.runtime import runtime

    with runtime().sessions() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == int(task_id.removeprefix(TASK_ID_PREFIX)))
            .values(completed_at=utcnow())
        )
        session.commit()
