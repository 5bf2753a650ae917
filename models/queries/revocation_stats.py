"""Revocations per day and their time to kill, over the last days, for the console's charts.

Time to kill, read back from the database: from a revocation to the gateway's last
acknowledgement of the keys it disabled (the latest `invalidated_at` of its review's
findings). Revocations that disabled no key, or whose keys are not acknowledged yet, have
none. (The worker's Prometheus histogram measures from the change's arrival instead.)
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.entities import ReviewFinding, Revocation, RevocationReview


@dataclass(frozen=True)
class DayFigure:
    day: date
    value: float
    count: int = 0  # how many revocations the value is made of


def revocations_per_day(
    session: Session, organisation_id: uuid.UUID, *, days: int, now: datetime
) -> list[DayFigure]:
    """One figure per day, oldest first, today last, days without any at zero."""
    since = _start(now, days)
    counts: dict[date, int] = {}
    for (revoked_at,) in session.execute(
        select(Revocation.revoked_at).where(
            Revocation.organisation_id == organisation_id, Revocation.revoked_at >= since
        )
    ):
        counts[_day(revoked_at)] = counts.get(_day(revoked_at), 0) + 1
    return [DayFigure(day, counts.get(day, 0), counts.get(day, 0)) for day in _days(now, days)]


def time_to_kill_per_day(
    session: Session, organisation_id: uuid.UUID, *, days: int, now: datetime
) -> list[DayFigure]:
    """The median time to kill of each day's revocations, in seconds (0 with count 0 when
    none of that day's was acknowledged by the gateway)."""
    since = _start(now, days)
    rows = session.execute(
        select(Revocation.revoked_at, func.max(ReviewFinding.invalidated_at))
        .join(RevocationReview, RevocationReview.revocation_id == Revocation.id)
        .join(ReviewFinding, ReviewFinding.review_id == RevocationReview.id)
        .where(
            Revocation.organisation_id == organisation_id,
            Revocation.revoked_at >= since,
            ReviewFinding.invalidated_at.is_not(None),
        )
        .group_by(Revocation.id, Revocation.revoked_at)
    )
    seconds: dict[date, list[float]] = {}
    for revoked_at, killed_at in rows:
        if killed_at is None:
            continue
        elapsed = (_aware(killed_at) - _aware(revoked_at)).total_seconds()
        seconds.setdefault(_day(revoked_at), []).append(max(0.0, elapsed))
    return [
        DayFigure(day, statistics.median(seconds[day]), len(seconds[day]))
        if day in seconds
        else DayFigure(day, 0.0, 0)
        for day in _days(now, days)
    ]


def _days(now: datetime, days: int) -> list[date]:
    today = _day(now)
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


def _start(now: datetime, days: int) -> datetime:
    first = _days(now, days)[0]
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(moment: datetime) -> date:
    return _aware(moment).astimezone(UTC).date()
