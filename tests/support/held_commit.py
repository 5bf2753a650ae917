"""A commit held in a web process of its own, for a test in another process to act around:
the transaction that writes a given key waits before it commits until the test lets it, and
the process is SIGKILLed right after that commit, as a process killed (OOM, a deploy) between
a write's commit and what it meant to do next.

The web process runs `install` (tests/support/served.py: web_alone's `setup`), or a Celery
worker (tests/support/worker.py: spawn_worker's `setup`, with `whole_group`: the worker and its
pool die together, as when its host kills it); the test waits for the marker file `held` in
`directory` (the write is about to commit), acts, and writes `go` to let it commit."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from models.entities import User, VirtualApiKey
from models.enums import UserStatus

# What a held write holds, by name: whether an object of its session is it, given the id.
HELD: dict[str, Callable[[object, uuid.UUID], bool]] = {
    "key": lambda found, wanted: isinstance(found, VirtualApiKey) and found.id == wanted,
    "revocation of": lambda found, wanted: (
        isinstance(found, User) and found.id == wanted and found.status is UserStatus.REVOKED
    ),
}

WAIT_FOR_GO = 60.0


def install(key_id: str, directory: str, *, whole_group: bool = False, held: str = "key") -> None:
    """Holds the transaction writing the key `key_id` (`held`: "revocation of", the one
    revoking the person of that id). `whole_group` kills the process group (a worker started
    in a session of its own)."""
    markers, wanted = Path(directory), uuid.UUID(key_id)
    holds = HELD[held]
    state = {"held": False, "committing": False}
    lock = threading.Lock()

    def before_commit(session: Session) -> None:
        # Perhaps a SAVEPOINT's release: the write is not committed yet either way.
        if not any(holds(found, wanted) for found in session):
            return
        with lock:
            if state["held"]:
                return
            state["held"] = state["committing"] = True
        (markers / "held").touch()
        give_up = time.monotonic() + WAIT_FOR_GO
        while not (markers / "go").exists() and time.monotonic() < give_up:
            time.sleep(0.02)

    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():  # a SAVEPOINT released; the commit comes later
            return
        with lock:
            if not state["committing"]:
                return
            state["committing"] = False
        if whole_group:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Session, "before_commit", before_commit)
    event.listen(Session, "after_commit", after_commit)
