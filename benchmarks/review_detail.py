"""GET /api/v1/reviews/<id> on a recertification campaign's review of 100,000 findings.

Before: the review's every finding loaded, sorted and rendered (review_detail up to 97e1428,
replayed here as it was). After: the first page (200, the default), and a page deep into
the review through its cursor. Both in the same run, on the same database, through the real
Flask app (test client, JSON encoded) and directly (the query alone).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/review_detail.py [--keys 100000] [--people 20000]

It creates (and drops) a database of its own; the organisation is recert_campaign.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recert_campaign import SETUP, populate  # noqa: E402

from benchmarks.scratch import postgres_scratch  # noqa: E402
from models.access import Viewer  # noqa: E402
from models.actions import recertification, tokens  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import Organisation, RevocationReview, User  # noqa: E402
from models.enums import Role, TokenScope, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.queries.reviews import SEVERITY_ORDER, finding_views, review_detail  # noqa: E402
from models.settings import Settings  # noqa: E402

RUNS = 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()
    with postgres_scratch(prefix="odock_bench_review") as url:
        settings = Settings(database_url=url, secret_key="benchmark-" + "0" * 32)
        engine = make_engine(settings)
        upgrade(engine)
        measure(settings, engine, args.keys, args.people)
        engine.dispose()


def measure(settings: Settings, engine: Any, keys: int, people: int) -> None:
    sessions = make_session_factory(engine)
    organisation_id = populate(sessions, keys, people)
    review_id, viewer, token = open_campaign(sessions, organisation_id)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    with sessions() as session:
        deep = review_detail(session, viewer, review_id, limit=200)
        for _ in range(250):  # 250 pages in: findings 50,001-50,200
            deep = review_detail(
                session, viewer, review_id, limit=200, after=uuid.UUID(deep["findings_next_cursor"])
            )
        cursor = deep["findings_next_cursor"]
    print(f"{keys:,} findings in the campaign's review")

    def direct(call: Callable[[Any], Any]) -> Callable[[], int]:
        def run() -> int:
            with sessions() as session:
                return len(json.dumps(call(session)))

        return run

    report("before: query, every finding", direct(lambda s: everything(s, review_id)))
    report("after: query, first page", direct(lambda s: review_detail(s, viewer, review_id)))
    report(
        "after: query, page 251",
        direct(lambda s: review_detail(s, viewer, review_id, after=uuid.UUID(cursor))),
    )
    from webhooks.app import create_app

    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/reviews/{review_id}"
    report("after: HTTP GET, first page", lambda: len(client.get(path, headers=headers).data))
    report(
        "after: HTTP GET, page 251",
        lambda: len(client.get(f"{path}?cursor={cursor}", headers=headers).data),
    )
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")


def open_campaign(sessions: Any, organisation_id: uuid.UUID) -> tuple[uuid.UUID, Viewer, str]:
    with sessions() as session:
        recertification.configure(
            session,
            organisation_id=organisation_id,
            actor=SETUP,
            changes={"spend_days": 30, "unused_days": 90, "moved_people": True},
        )
        opened = recertification.open_campaign(
            session, organisation_id=organisation_id, actor=SETUP, slot="schedule:1"
        )
        organisation = session.get_one(Organisation, organisation_id)
        admin = User(
            organisation_id=organisation_id,
            name="Admin",
            email="admin@bench.example",
            email_key="admin@bench.example",
            role=Role.ORG_ADMIN,
            status=UserStatus.ACTIVE,
        )
        session.add(admin)
        session.flush()
        token = tokens.create_token(
            session, organisation=organisation, scope=TokenScope.ADMIN, user=admin, actor=SETUP
        ).secret
        viewer = Viewer.for_user(admin)
        review_id = opened.campaign.review_id
        session.commit()
    assert review_id is not None
    return review_id, viewer, token


def everything(session: Any, review_id: uuid.UUID) -> list[dict[str, Any]]:
    """What review_detail did before paging: every finding loaded, sorted, rendered."""
    review = session.get_one(RevocationReview, review_id)
    findings = sorted(
        review.findings,
        key=lambda f: (
            f.state.value != "open",
            SEVERITY_ORDER[f.severity.value],
            f.kind,
        ),
    )
    return finding_views(session, findings)


def report(label: str, run: Callable[[], int]) -> None:
    size = run()  # warm
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    print(
        f"{label:32} median {statistics.median(times) * 1000:9.1f} ms "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; {size:,} bytes)"
    )


if __name__ == "__main__":
    main()
