"""A large SCIM group read with and without its members (Entra ID's
`excludedAttributes=members`), in one run: the members' own read is the baseline.

Seeds one organisation with N SCIM users in one group (on SQLite, then on a scratch
database of DATABASE_URL's PostgreSQL when it names one), then times `GET /Groups/{id}`
and the `displayName eq` list, each with and without members, through the app in this
process.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/scim_group_members.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scim_vs_reference import bench_organisation, seed  # noqa: E402
from benchmarks.scratch import on_both_backends  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.entities import ScimUser, TeamMembership  # noqa: E402
from models.enums import Source, TeamRole  # noqa: E402
from webhooks.app import create_app  # noqa: E402

SCIM = "application/scim+json"


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run_backend(label: str, database_url: str, broker_url: str, members: int) -> None:
    settings, engine, org, token = bench_organisation(database_url, broker_url)
    seed(engine, org, 0, members)
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": SCIM}
    made = client.post("/scim/v2/Groups", json={"displayName": "Everyone"}, headers=headers)
    assert made.status_code == 201, made.get_data(as_text=True)
    group_id = made.get_json()["id"]
    join_everyone(engine, group_id)

    def get(path: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)[:200]
            return response

        return call

    one = f"/scim/v2/Groups/{group_id}"
    listed = '/scim/v2/Groups?filter=displayName eq "Everyone"'
    whole_get, bare_get = timed(get(one), 5), timed(get(one + "?excludedAttributes=members"), 5)
    whole_list = timed(get(listed), 5)
    bare_list = timed(get(listed + "&excludedAttributes=members"), 5)
    same = get(one)().headers["ETag"] == get(one + "?excludedAttributes=members")().headers["ETag"]
    print(f"{label}: one group of {members:,} members (median of 5, ms)")
    row("GET /Groups/{id}", whole_get, bare_get)
    row("GET /Groups?filter=...", whole_list, bare_list)
    print(f"  same ETag both ways: {same}")
    engine.dispose()


def row(what: str, whole: float, bare: float) -> None:
    print(f"  {what:24} whole {whole:8.1f}   without members {bare:7.1f}   {whole / bare:5.1f}x")


def join_everyone(engine: Any, group_id: str) -> None:
    with engine.begin() as connection:
        user_ids = connection.execute(select(ScimUser.user_id)).scalars().all()
        now = utcnow()
        rows = [
            {
                "team_id": uuid.UUID(group_id),
                "user_id": u,
                "role": TeamRole.MEMBER,
                "source": Source.SCIM,
                "created_at": now,
            }
            for u in user_ids
        ]
        connection.execute(insert(TeamMembership), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    on_both_backends(run_backend, parser.parse_args().members)


if __name__ == "__main__":
    main()
