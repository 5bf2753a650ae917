"""kombu's Redis transport, with a fix for the worker crash on a Redis blip.

When the connection to Redis drops, Celery's consumer closes it; closing a channel first
detaches the kombu connection from its transport, then restores the unacknowledged messages
(those a worker holds, such as a task waiting out a retry countdown) through a fresh pool
whose parameters it reads from that detached connection. kombu 5.7.0 (with redis-py 8.x)
then raises `AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery
treats as unrecoverable: the worker exits. This channel remembers the parameters it was
opened with and uses them for that last restore, which then either reaches Redis (the message
is put back) or fails with a connection error that Celery ignores and recovers from.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        saved: dict[bool, dict[str, Any]] = self.__dict__.setdefault("_odock_connparams", {})
        if self.connection.client is None and asynchronous in saved:
            return dict(saved[asynchronous])
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        saved[asynchronous] = dict(params)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` broker URLs use this transport in this process."""
    TRANSPORT_ALIASES["redis"] = "worker.redis_broker:Transport"
