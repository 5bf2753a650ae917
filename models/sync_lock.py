"""Leases that keep two syncs of one connector from overlapping, in every process alike.

A lease is a row in the database (`sync_leases`), which every process of a deployment shares
whatever its environment: a CLI run, a worker and a web process all take the same lock. The
holder renews it while it works (a heartbeat); a holder that dies (kill -9, a lost host)
stops renewing, and its lease is free again once it expires, after `ttl` seconds.

A task's attempt may name itself (its task id and attempt number, `Holder`): the retry of
a sync that the database dropped mid-run, too early for it to release its lease, takes that
lease back at once from the attempts before it, which are over (each raised to retry),
instead of being skipped until the lease expires. A copy of the same task sent again (the
outbox's stale-dispatch sweep) starts again at attempt 0 and takes over nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import SessionFactory
from models.entities import SyncLease

EARLIER_ATTEMPTS = 16
"""How many earlier attempts a retry takes a lease back from: the leases of older ones have
expired by then (their retries' delays add up to more than a lease's time)."""


@dataclass(frozen=True)
class Holder:
    """One attempt of a task, and the earlier attempts of it whose lease it may take back."""

    token: str
    earlier: tuple[str, ...] = ()

    @classmethod
    def attempt(cls, task_id: str, retries: int) -> Holder:
        first = max(0, retries - EARLIER_ATTEMPTS)
        return cls(f"{task_id}#{retries}", tuple(f"{task_id}#{n}" for n in range(first, retries)))


class SyncLock:
    """Named leases in the database; each call is its own short transaction."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def acquire(self, name: str, *, ttl: float, holder: Holder | None = None) -> str | None:
        """A holder token (`holder`'s when given), or None when someone else holds a lease
        that has not expired; one that an earlier attempt of `holder` left is taken back."""
        token = holder.token if holder else secrets.token_hex(16)
        earlier = holder.earlier if holder else ()
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
                .where(
                    SyncLease.name == name,
                    or_(SyncLease.expires_at < now, SyncLease.holder.in_(earlier)),
                )
                .values(holder=token, expires_at=expires)
            )
            session.commit()
            return token if taken.rowcount == 1 else None  # type: ignore[attr-defined]

    def renew(self, name: str, token: str, *, ttl: float) -> bool:
        """Extend a held lease; False when it is no longer ours (expired and taken)."""
        with self.sessions() as session:
            renewed = session.execute(
                update(SyncLease)
                .where(SyncLease.name == name, SyncLease.holder == token)
                .values(expires_at=utcnow() + timedelta(seconds=ttl))
            )
            session.commit()
            return renewed.rowcount == 1  # type: ignore[attr-defined]

    def release(self, name: str, token: str) -> None:
        with self.sessions() as session:
            session.execute(
                delete(SyncLease).where(SyncLease.name == name, SyncLease.holder == token)
            )
            session.commit()


def live_leases(session: Session, names: list[str], *, now: datetime) -> set[str]:
    """Which of these leases are held and not expired."""
    if not names:
        return set()
    return set(
        session.scalars(
            select(SyncLease.name).where(SyncLease.name.in_(names), SyncLease.expires_at >= now)
        )
    )
