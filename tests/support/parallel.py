"""Requests sent at the same moment: each thread waits at a barrier, then sends its own; or
sent while a transaction of the test holds the locks they need."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from models.db import make_session_factory
from tests.support.wait import wait_until

Answer = TypeVar("Answer")


def in_parallel(calls: list[Callable[[], Answer]]) -> list[Answer]:
    """Run every call at once; the answers in the calls' order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def in_thread(body: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `body` in a thread of its own, started; its result, or the error it raised (the
    test reports it, whatever it is), lands in the dict as "result" or "error"."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = body()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def while_held(
    engine: Engine, hold: Callable[[Session], None], calls: list[Callable[[], Answer]]
) -> list[Answer]:
    """`hold` runs in a transaction of its own and takes its locks; then every call starts in
    a thread of its own, and the transaction commits once each call waits for a lock or is
    done (PostgreSQL: pg_stat_activity; on SQLite a call cannot begin while `hold` writes).
    The calls' answers, in order; a call's error is raised."""
    with make_session_factory(engine)() as own:
        hold(own)
        running = [in_thread(call) for call in calls]
        wait_until(
            lambda: _waiting_for_locks(engine, sum(t.is_alive() for t, _ in running)),
            timeout=60,
            what="the calls waiting for a lock",
        )
        own.commit()
    answers = []
    for thread, out in running:
        thread.join(60)
        assert not thread.is_alive(), "a call still runs"
        if "error" in out:
            raise out["error"]
        answers.append(out["result"])
    return answers


def _waiting_for_locks(engine: Engine, running: int) -> bool:
    """Whether `running` backends of this database wait for a lock (SQLite: cannot be seen,
    and need not: a transaction there cannot begin while another writes)."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as connection:
        waiting = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return (waiting or 0) >= running
