"""Keeping a lease (models.sync_lock) alive while its holder works, from a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from models.directory.runs import SyncInterrupted
from models.sync_lock import SyncLock

log = structlog.get_logger(__name__)


class Heartbeat:
    """Renews a lease while its holder works, from a thread; notes when the lease was lost.
    With `wanted`, asked at each beat first: once it says no (what the work is for was
    deleted), the lease is given up and `unwanted` noted, for the holder to stop."""

    def __init__(
        self,
        lock: SyncLock,
        name: str,
        token: str,
        *,
        ttl: float,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.lock = lock
        self.name = name
        self.token = token
        self.ttl = ttl
        self.wanted = wanted
        self.lost = False
        self.unwanted = False
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
                if self.wanted is not None and not self.wanted():
                    self.unwanted = True
                    self.lock.release(self.name, self.token)
                    return
                if not self.lock.renew(self.name, self.token, ttl=self.ttl):
                    self.lost = True
                    return
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("directory_sync.lease_not_renewed", lease=self.name, exc_info=True)

    def check(self) -> None:
        """Refuse to write once the lease is lost: another sync may be running now."""
        if self.lost:
            raise SyncInterrupted("the sync lost its lease (not renewed in time); nothing applied")
