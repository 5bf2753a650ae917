"""Keeping a lease (models.sync_lock) alive while its holder works, from a thread."""

from __future__ import annotations

import threading

import structlog

from models.directory.runs import SyncInterrupted
from models.sync_lock import SyncLock

log = structlog.get_logger(__name__)


class Heartbeat:
    """Renews a lease while its holder works, from a thread; notes when the lease was lost."""

    def __init__(self, lock: SyncLock, name: str, token: str, *, ttl: float) -> None:
        self.lock = lock
        self.name = name
        self.token = token
        self.ttl = ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sync-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.lock.renew(self.name, self.token, ttl=self.ttl):
                    self.lost = True
                    return
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("directory_sync.lease_not_renewed", lease=self.name, exc_info=True)

    def check(self) -> None:
        """Refuse to write once the lease is lost: another sync may be running now."""
        if self.lost:
            raise SyncInterrupted("the sync lost its lease (not renewed in time); nothing applied")
