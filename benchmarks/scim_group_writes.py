"""Large SCIM group writes: a group created with N members, N members added in one PATCH,
then removed in one PATCH, through the app in this process; then a role mapped to the
created group (the CLI's operation) and the group deleted (its members' role taken back).
Prints each request's SQL statements and Python function calls (deterministic) and its wall
time (noisy: compare runs made side by side), on SQLite, then on a scratch database of
DATABASE_URL's PostgreSQL when it names one.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python benchmarks/scim_group_writes.py --members 1000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scim_vs_reference import PATCH_OP, bench_organisation, seed  # noqa: E402
from benchmarks.scratch import StatementCounter, on_both_backends  # noqa: E402
from models.actions import scim as scim_actions  # noqa: E402
from models.actions.mass_change import set_thresholds  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.db import make_session_factory  # noqa: E402
from models.entities import Organisation, ScimUser  # noqa: E402
from models.enums import Role, Source  # noqa: E402
from webhooks.app import create_app  # noqa: E402

SCIM = "application/scim+json"


PROFILE_LINES = 0  # --profile: print this many lines of each request's profile
WALL_ONLY = False  # --wall: time each request without the statement counter and profiler
NO_GATE = False  # --no-gate: the mass-change gate off, so the deletion's role drops all apply


def measured(call: Callable[[], Any]) -> tuple[int, int, float]:
    """(statements, function calls, wall ms) of one call (statements of every engine)."""
    if WALL_ONLY:
        started = time.perf_counter()
        call()
        return 0, 0, (time.perf_counter() - started) * 1000
    counter = StatementCounter(Engine, lambda _statement: "all")
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    call()
    profile.disable()
    wall = (time.perf_counter() - started) * 1000
    event.remove(Engine, "before_cursor_execute", counter.on_statement)
    if PROFILE_LINES:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(PROFILE_LINES)
    return counter.counts["all"], pstats.Stats(profile).total_calls, wall  # type: ignore[attr-defined]


def run_backend(label: str, database_url: str, broker_url: str, members: int) -> None:
    settings, engine, org, token = bench_organisation(database_url, broker_url)
    seed(engine, org, 0, 2 * members)
    with engine.connect() as connection:
        ids = [str(i) for i in connection.execute(select(ScimUser.id)).scalars()]
    first, second = ids[:members], ids[members:]
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM}
    made: dict[str, Any] = {}

    def create() -> None:
        body = {"displayName": "Created", "members": [{"value": i} for i in first]}
        response = client.post("/scim/v2/Groups", json=body, headers=headers)
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
        made["created"] = response.get_json()["id"]

    def empty_group() -> None:
        response = client.post("/scim/v2/Groups", json={"displayName": "Patched"}, headers=headers)
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
        made["id"] = response.get_json()["id"]

    def patch(op: str) -> Callable[[], None]:
        def call() -> None:
            operation = {"op": op, "path": "members", "value": [{"value": i} for i in second]}
            body = {"schemas": [PATCH_OP], "Operations": [operation]}
            response = client.patch(f"/scim/v2/Groups/{made['id']}", json=body, headers=headers)
            assert response.status_code in (200, 204), response.get_data(as_text=True)[:300]

        return call

    def one_more(member: str, query: str = "") -> Callable[[], None]:
        """Entra ID's usual write: one member added to a large group (the created one)."""

        def call() -> None:
            operation = {"op": "add", "path": "members", "value": [{"value": member}]}
            body = {"schemas": [PATCH_OP], "Operations": [operation]}
            url = f"/scim/v2/Groups/{made['created']}{query}"
            response = client.patch(url, json=body, headers=headers)
            assert response.status_code in (200, 204), response.get_data(as_text=True)[:300]

        return call

    def map_role() -> None:
        with make_session_factory(engine)() as session:
            organisation = session.get(Organisation, org.id)
            assert organisation is not None
            if NO_GATE:
                set_thresholds(
                    session,
                    organisation=organisation,
                    actor=Actor(Source.ADMIN, "bench"),
                    enabled=False,
                )
            scim_actions.set_group_role(
                session,
                organisation=organisation,
                group_name="Created",
                role=Role.MANAGER,
                actor=Actor(Source.ADMIN, "bench"),
            )
            session.commit()

    def delete() -> None:
        response = client.delete(f"/scim/v2/Groups/{made['created']}", headers=headers)
        assert response.status_code == 204, response.get_data(as_text=True)[:300]

    empty_group()
    print(f"{label}: {members:,} members in one request")
    for what, call in (
        (f"POST /Groups, {members} members", create),
        (f"PATCH add {members}", patch("add")),
        (f"PATCH remove {members}", patch("remove")),
        (f"PATCH add 1 to {members}", one_more(second[0])),
        ("  answered without members", one_more(second[1], "?excludedAttributes=members")),
        (f"role mapped to {members + 2}", map_role),
        (f"DELETE /Groups, {members + 2}", delete),
    ):
        statements, calls, wall = measured(call)
        if WALL_ONLY:
            print(f"  {what:28} {wall:8.0f} ms")
            continue
        print(
            f"  {what:28} {statements:6} statements ({statements / members:5.2f}/member)"
            f"  {calls:9,} calls ({calls / members:6.0f}/member)  {wall:8.0f} ms"
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=0, help="print this many profile lines")
    parser.add_argument("--wall", action="store_true", help="wall time only, nothing counted")
    parser.add_argument("--no-gate", action="store_true", help="the mass-change gate off")
    arguments = parser.parse_args()
    global PROFILE_LINES, WALL_ONLY, NO_GATE
    PROFILE_LINES, WALL_ONLY, NO_GATE = arguments.profile, arguments.wall, arguments.no_gate
    on_both_backends(run_backend, arguments.members)


if __name__ == "__main__":
    main()
