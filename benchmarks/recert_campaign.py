"""Opening a key recertification campaign over 100,000 keys on PostgreSQL.

An organisation with 20,000 people and 100,000 active USER keys: 60% used in the last 30 days
(one usage record each, plus 100,000 older records), 40% created 200 days ago and never used
since; 2,000 people joined a team after the previous campaign. The policy's scope is spend in
30 days, unused for 90 days and moved people, so every key is in scope. The figure is the
wall time of `open_campaign` (scope query, findings written in batches of 5,000, report,
audit, notification) and of its commit, then of the same slot opened again (idempotent).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/recert_campaign.py [--keys 100000] [--people 20000]

It creates (and drops) a database of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import postgres_scratch  # noqa: E402
from models.actions import organisations, recertification, teams  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import (  # noqa: E402
    ReviewFinding,
    TeamMembership,
    UsageRecord,
    User,
    VirtualApiKey,
)
from models.enums import KeyType, Role, TeamRole, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

SETUP = Actor.system("benchmark")
BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()
    with postgres_scratch(prefix="odock_bench_recert") as url:
        settings = Settings(database_url=url, secret_key="benchmark-" + "0" * 32)
        engine = make_engine(settings)
        upgrade(engine)
        measure(engine, args.keys, args.people)
        engine.dispose()


def measure(engine: Any, keys: int, people: int) -> None:
    sessions = make_session_factory(engine)
    started = time.perf_counter()
    organisation_id = populate(sessions, keys, people)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    print(f"populated {keys:,} keys, {people:,} people in {time.perf_counter() - started:.1f} s")
    with sessions() as session:
        recertification.configure(
            session,
            organisation_id=organisation_id,
            actor=SETUP,
            changes={"spend_days": 30, "unused_days": 90, "moved_people": True},
        )
        session.commit()
    for attempt in ("first", "again"):
        with sessions() as session:
            began = time.perf_counter()
            opened = recertification.open_campaign(
                session, organisation_id=organisation_id, actor=SETUP, slot="schedule:1"
            )
            opened_at = time.perf_counter()
            session.commit()
            committed = time.perf_counter()
            findings = session.scalar(
                select(func.count()).where(ReviewFinding.review_id == opened.campaign.review_id)
            )
        print(
            f"open ({attempt}): {opened_at - began:.2f} s, commit {committed - opened_at:.2f} s, "
            f"total {committed - began:.2f} s; created={opened.created}; findings={findings:,}; "
            f"in scope {opened.campaign.report['in_scope']}"
        )
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")


def populate(sessions: Any, keys: int, people: int) -> uuid.UUID:
    now = utcnow()
    long_ago = now - timedelta(days=200)
    with sessions() as session:
        org = organisations.create_organisation(
            session, name="Benchmark", slug="benchmark", actor=SETUP
        )
        team = teams.create_team(session, organisation=org, name="Moved", actor=SETUP)
        session.flush()
        org_id, team_id = org.id, team.id
        user_ids = [new_id() for _ in range(people)]
        _bulk(session, User, [_user(org_id, uid, n, long_ago) for n, uid in enumerate(user_ids)])
        moved = user_ids[: max(1, people // 10)]
        _bulk(
            session,
            TeamMembership,
            [
                {"team_id": team_id, "user_id": uid, "role": TeamRole.MEMBER, "created_at": now}
                for uid in moved
            ],
        )
        key_rows, usage_rows = [], []
        for n in range(keys):
            key_id = new_id()
            used = n % 10 < 6
            key_rows.append(
                {
                    "id": key_id,
                    "organisation_id": org_id,
                    "key_type": KeyType.USER,
                    "owner_user_id": user_ids[n % people],
                    "created_by_user_id": user_ids[n % people],
                    "name": f"key {n}",
                    "masked_value": f"sk-...{n % 10000:04d}",
                    "revoked": False,
                    "version": 0,
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
            )
            usage_rows.append(_usage(org_id, key_id, user_ids[n % people], long_ago))
            if used:
                usage_rows.append(_usage(org_id, key_id, user_ids[n % people], now))
        _bulk(session, VirtualApiKey, key_rows)
        _bulk(session, UsageRecord, usage_rows)
        session.commit()
    return org_id


def _user(org_id: uuid.UUID, uid: uuid.UUID, n: int, at: Any) -> dict[str, Any]:
    email = f"person{n}@bench.example"
    return {
        "id": uid,
        "organisation_id": org_id,
        "name": f"Person {n}",
        "email": email,
        "email_key": email,
        "role": Role.USER,
        "status": UserStatus.ACTIVE,
        "created_at": at,
        "updated_at": at,
    }


def _usage(org_id: uuid.UUID, key_id: uuid.UUID, user_id: uuid.UUID, at: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "organisation_id": org_id,
        "api_key_id": key_id,
        "user_id": user_id,
        "occurred_at": at,
        "model": "gpt-bench",
        "cost": Decimal("0.01"),
        "input_tokens": 10,
        "output_tokens": 5,
        "requests": 1,
    }


def _bulk(session: Any, entity: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        session.execute(insert(entity), rows[start : start + BATCH])


if __name__ == "__main__":
    main()
