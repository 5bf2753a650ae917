"""Query plans of the directory-run lookups by status, before and after migration 0030.

A throwaway PostgreSQL database is migrated to the revision before 0031, filled with runs
(an incremental sync every 5 minutes per connector is ~105,000 runs a year), analysed and
explained; then migrated to head and explained again. The database is dropped at the end.

Run: .venv/bin/python benchmarks/ldap_run_indexes.py [--connectors 20] [--runs 25000]
     [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic.script import ScriptDirectory

from models.migrate import alembic_config, upgrade

INDEXES = "0031_ldap_run_status"
BEFORE = str(ScriptDirectory.from_config(alembic_config()).get_revision(INDEXES).down_revision)
CONNECTOR = "(SELECT id FROM directory_connectors ORDER BY name LIMIT 1)"
QUERIES = {
    "reaper, every connector (status = running)": (
        "SELECT id, connector_id FROM directory_sync_runs WHERE status = 'running'"
    ),
    "reaper, the connector it holds": (
        "SELECT id, connector_id FROM directory_sync_runs "
        f"WHERE status = 'running' AND connector_id = {CONNECTOR}"
    ),
    "latest successful run of a connector (source health)": (
        "SELECT max(finished_at) FROM directory_sync_runs "
        f"WHERE connector_id = {CONNECTOR} AND status IN ('succeeded', 'approved') "
        "AND dry_run IS false"
    ),
}

FILL = """
INSERT INTO directory_sync_runs (
    id, organisation_id, connector_id, kind, status, dry_run, trigger, started_at,
    finished_at, duration_ms, read_count, created_count, updated_count, revoked_count,
    reactivated_count, unchanged_count, error_count, error, error_code, decided_by)
SELECT gen_random_uuid(), c.organisation_id, c.id,
       CASE WHEN n % 12 = 0 THEN 'full' ELSE 'incremental' END,
       CASE WHEN n % 997 = 0 THEN 'failed' WHEN n % 4001 = 0 THEN 'quarantined'
            WHEN n % 503 = 0 THEN 'skipped' ELSE 'succeeded' END,
       false, 'schedule',
       now() - make_interval(mins => 5 * (:runs - n)),
       now() - make_interval(mins => 5 * (:runs - n)) + interval '3 seconds',
       3000, 40, 0, 1, 0, 0, 39, 0, '', '', ''
FROM directory_connectors c, generate_series(1, :runs) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", type=int, default=20)
    parser.add_argument("--runs", type=int, default=25_000, help="runs per connector")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    name = f"bench_runs_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(args.database_url).set(database=name))
    try:
        upgrade(engine, BEFORE)
        _fill(engine, args.connectors, args.runs)
        _explain(engine, f"before (migrated to {BEFORE})")
        upgrade(engine)
        _explain(engine, "after (migrated to head)")
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}"'))


def _fill(engine: Engine, connectors: int, runs: int) -> None:
    with engine.begin() as connection:
        for n in range(connectors):
            org = uuid.uuid4()
            connection.execute(
                text(
                    "INSERT INTO organisations (id, name, slug, created_at, updated_at) "
                    "VALUES (:id, :name, :slug, now(), now())"
                ),
                {"id": org, "name": f"Org {n}", "slug": f"org-{n}"},
            )
            connection.execute(
                text(
                    "INSERT INTO directory_connectors (id, organisation_id, name, enabled, "
                    "server_urls, start_tls, ca_file, verify_tls, bind_dn, "
                    "bind_password_encrypted, base_dn, user_filter, group_base_dn, "
                    "group_filter, page_size, connect_timeout, search_timeout, "
                    "full_sync_minutes, incremental_minutes, preset, attribute_mapping, "
                    "group_teams, group_roles, safety, watermark, created_at, updated_at) "
                    "VALUES (:id, :org, :name, true, '[]', false, '', true, '', '', "
                    "'dc=corp', '', '', '', 500, 5, 60, 60, 5, 'openldap', '{}', '{}', '{}', "
                    "'{}', '', now(), now())"
                ),
                {"id": uuid.uuid4(), "org": org, "name": f"corp-{n:03d}"},
            )
        connection.execute(text(FILL), {"runs": runs})
        # Two syncs running now, as the reaper finds them on a busy day.
        connection.execute(
            text(
                "UPDATE directory_sync_runs SET status = 'running', finished_at = NULL "
                "WHERE id IN (SELECT id FROM directory_sync_runs "
                "ORDER BY started_at DESC LIMIT 2)"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE directory_sync_runs"))
        total = connection.scalar(text("SELECT count(*) FROM directory_sync_runs"))
        size = connection.scalar(
            text("SELECT pg_size_pretty(pg_total_relation_size('directory_sync_runs'))")
        )
    print(f"{total:,} runs of {connectors} connectors ({size} with indexes)\n")


def _explain(engine: Engine, title: str) -> None:
    print(f"== {title}")
    with engine.connect() as connection:
        for label, query in QUERIES.items():
            for _warm in range(2):  # the second run is reported: the pages are cached
                rows = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {query}")).all()
            print(f"-- {label}")
            for (line,) in rows:
                print(f"   {line}")
        connection.rollback()
    print()


if __name__ == "__main__":
    main()
