"""The reaper's and source health's questions about runs are answered from partial indexes,
not by scanning every run a connector ever had (PostgreSQL; the figures at 500,000 runs are
in docs/benchmarks/ldap.md, from benchmarks/ldap_run_indexes.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Select, text

from models.queries.directory import last_success, running_runs

RUNS = 20_000  # some ten weeks of a connector's incremental syncs, every 5 minutes


def _plan(session, statement: Select) -> str:
    """EXPLAIN of the statement as the application sends it (bound parameters and all)."""
    compiled = statement.compile(
        dialect=session.bind.dialect, compile_kwargs={"render_postcompile": True}
    )
    rows = session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


def test_running_and_last_successful_runs_use_their_indexes(make_connector, session, settings):
    if settings.is_sqlite:
        pytest.skip("the planner checked is PostgreSQL's")
    connector = make_connector()
    session.execute(
        text(
            "INSERT INTO directory_sync_runs (id, organisation_id, connector_id, kind, status, "
            "dry_run, trigger, started_at, finished_at, duration_ms, read_count, created_count, "
            "updated_count, revoked_count, reactivated_count, unchanged_count, error_count, "
            "error, error_code, decided_by) "
            "SELECT gen_random_uuid(), :org, :connector, 'incremental', "
            "CASE WHEN n = :runs THEN 'running' WHEN n % 997 = 0 THEN 'failed' "
            "ELSE 'succeeded' END, false, 'schedule', "
            "now() - make_interval(mins => 5 * (:runs - n)), "
            "now() - make_interval(mins => 5 * (:runs - n)), 0, 0, 0, 0, 0, 0, 0, 0, '', '', '' "
            "FROM generate_series(1, :runs) AS n"
        ),
        {"org": connector.organisation_id, "connector": connector.id, "runs": RUNS},
    )
    session.commit()
    session.connection().exec_driver_sql("ANALYZE directory_sync_runs")

    assert "ix_directory_sync_runs_running" in _plan(session, running_runs())
    assert "ix_directory_sync_runs_running" in _plan(session, running_runs(connector.id))
    assert "ix_directory_sync_runs_succeeded" in _plan(session, last_success(connector.id))
    session.rollback()
