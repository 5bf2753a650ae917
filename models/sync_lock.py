"""A lock that keeps two syncs of one connector from overlapping.

Redis (SET NX PX, released only by its holder) where Redis is configured; otherwise a lease
row in the database, taken with a conditional write. Both expire, so a crashed holder does not
block the next run forever.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Protocol

import redis
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from models.base import utcnow
from models.db import SessionFactory
from models.entities import SyncLease
from models.settings import Settings

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class SyncLock(Protocol):
    def acquire(self, name: str, *, ttl: float) -> str | None:
        """A holder token, or None when someone else holds the lock."""

    def release(self, name: str, token: str) -> None: ...


class RedisSyncLock:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def acquire(self, name: str, *, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        taken = self.client.set(f"odock:lock:{name}", token, nx=True, px=int(ttl * 1000))
        return token if taken else None

    def release(self, name: str, token: str) -> None:
        self.client.eval(_RELEASE, 1, f"odock:lock:{name}", token)


class DatabaseSyncLock:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def acquire(self, name: str, *, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        now = utcnow()
        expires = now + timedelta(seconds=ttl)
        with self.sessions() as session:
            try:
                session.execute(
                    insert(SyncLease).values(name=name, holder=token, expires_at=expires)
                )
                session.commit()
                return token
            except IntegrityError:
                session.rollback()
            taken = session.execute(
                update(SyncLease)
                .where(SyncLease.name == name, SyncLease.expires_at < now)
                .values(holder=token, expires_at=expires)
            )
            session.commit()
            return token if taken.rowcount == 1 else None  # type: ignore[attr-defined]

    def release(self, name: str, token: str) -> None:
        with self.sessions() as session:
            session.execute(
                delete(SyncLease).where(SyncLease.name == name, SyncLease.holder == token)
            )
            session.commit()


def redis_url_of(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    broker = settings.celery_broker_url
    return broker if broker.startswith(("redis://", "rediss://")) else ""


def sync_lock(settings: Settings, sessions: SessionFactory) -> SyncLock:
    url = redis_url_of(settings)
    return RedisSyncLock(url) if url else DatabaseSyncLock(sessions)
