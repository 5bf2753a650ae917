"""Benchmark: what token authentication costs a request, in statements and in time.

The real app, in process (Flask's test client: no HTTP, so the database work stands out),
on the embedded SQLite default and, when DATABASE_URL names a PostgreSQL server, on a scratch
database there. Per scenario it counts the SQL statements each request sends (token lookups,
last-use writes, other reads, commits) and times the requests (p50/p99):

- SCIM `GET /ServiceProviderConfig` (nothing but authentication touches the database) and
  admin `GET /api/v1/teams` (one more read), each with the token cache on (the default 2 s)
  and off (`SCIM_TOKEN_CACHE_SECONDS=0`: one token SELECT per request, as the admin API did
  before every scope went through the cache);
- last-use writes over ten simulated minutes of one SCIM request a second (time-machine
  moves the wall clock, which the last-use throttle reads; the cache reads a monotonic clock
  that does not move, so with the cache on no request reads the token row either).

    python benchmarks/token_auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import time_machine
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import StatementCounter, on_both_backends  # noqa: E402
from models.actions import organisations, tokens  # noqa: E402
from models.actions import users as user_actions  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.enums import Role, Source, TokenScope  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from webhooks.app import create_app  # noqa: E402
from webhooks.context import EXTENSION  # noqa: E402

SETUP = Actor(Source.SYSTEM, "benchmark")


def statement_kind(statement: str) -> str:
    words = statement.lstrip().split(None, 1)
    verb = words[0].upper() if words else ""
    if "api_tokens" in statement:
        return f"token {verb}"
    if verb == "BEGIN":
        return "BEGIN"
    return "other SELECT" if verb == "SELECT" else f"other {verb}"


def seed(settings: Settings) -> tuple[str, str]:
    """One organisation, an admin and two tokens; returns (scim secret, admin secret)."""
    engine = make_engine(settings)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        org = organisations.create_organisation(session, name="Bench", slug=None, actor=SETUP)
        admin = user_actions.create_user(
            session,
            organisation=org,
            email="admin@bench.test",
            name="Admin",
            role=Role.ORG_ADMIN,
            actor=SETUP,
        )
        scim = tokens.create_token(session, organisation=org, scope=TokenScope.SCIM, actor=SETUP)
        adm = tokens.create_token(
            session, organisation=org, scope=TokenScope.ADMIN, user=admin, actor=SETUP
        )
        session.commit()
    engine.dispose()
    return scim.secret, adm.secret


def measure(
    client: FlaskClient, counter: StatementCounter, path: str, secret: str, n: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {secret}"}

    def request() -> Any:
        return client.get(path, headers=headers)

    tokens._GRANTS.clear()
    tokens._USE_WRITTEN.clear()
    for _ in range(20):  # warm-up: the first use writes last_used_at, once
        assert request().status_code == 200
    counter.counts.clear()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = request()
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.get_data(as_text=True)
    times.sort()
    return {
        "per_request": {k: round(v / n, 3) for k, v in sorted(counter.counts.items())},
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[int(n * 0.99) - 1] * 1000, 3),
    }


def simulated_minutes(
    client: FlaskClient, counter: StatementCounter, secret: str, start: datetime
) -> Counter:
    """One SCIM request a (simulated) second for ten minutes from `start`: what was written?"""
    tokens._GRANTS.clear()
    tokens._USE_WRITTEN.clear()
    counter.counts.clear()
    headers = {"Authorization": f"Bearer {secret}"}
    for second in range(600):
        with time_machine.travel(start + timedelta(seconds=second), tick=False):
            assert client.get("/scim/v2/ServiceProviderConfig", headers=headers).status_code == 200
    return counter.counts.copy()


def run_backend(label: str, database_url: str, broker_url: str, n: int) -> None:
    base = {
        "database_url": database_url,
        "celery_broker_url": broker_url,
        "secret_key": "bench-secret-key-0123456789abcdef",
        "log_level": "WARNING",
    }
    scim_secret, admin_secret = seed(Settings(**base))
    for ttl in (2.0, 0.0):
        app = create_app(Settings(**base, scim_token_cache_seconds=ttl))
        client = app.test_client()
        counter = StatementCounter(app.extensions[EXTENSION].engine, statement_kind, commits=True)
        for path, secret in [
            ("/scim/v2/ServiceProviderConfig", scim_secret),
            ("/api/v1/teams", admin_secret),
        ]:
            figures = measure(client, counter, path, secret, n)
            print(label, f"cache {ttl:g} s", "GET", path, figures)
        # Each run an hour after the last one's writes, as they move the row's last use ahead.
        later = utcnow() + timedelta(hours=1 if ttl else 2)
        counts = simulated_minutes(client, counter, scim_secret, later)
        print(label, f"cache {ttl:g} s", "600 SCIM requests in 10 simulated minutes", dict(counts))
        app.extensions[EXTENSION].engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    on_both_backends(run_backend, args.requests)


if __name__ == "__main__":
    main()
