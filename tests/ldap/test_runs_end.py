"""Every run ends: a crash fails the run with an alert, a dead holder's lease frees itself
and its run is reaped, and every process takes the same lock whatever its environment."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import time_machine
from sqlalchemy import select

from models.base import utcnow
from models.directory import read
from models.directory.runs import lease_name
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    DirectorySyncRun,
    Organisation,
    OutboxMessage,
)
from models.enums import SyncKind, SyncRunStatus, UserStatus
from models.sync_lock import live_leases
from tests.ldap.conftest import (
    connector_runs,
    get_run,
    lease_renewed_past_its_first_term,
    linked_users,
)
from tests.support import factories
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until
from tests.support.worker import ROOT, settings_env
from worker.directory_sync import run_sync

LEASE_SECONDS = 3.0
# A lease and a bind timeout no test outlasts (the largest search timeout a connector takes).
HELD_SECONDS = 3600.0
# A bound on a CLI process starting and ending, for a shared machine under load: not a timing.
PROCESS_BOUND = 600.0


def _alerted(sessions, run_id: str) -> bool:
    with sessions() as s:
        found = any(
            m.task == "notifications.dispatch"
            and m.kwargs["event"] == "directory_sync.failed"
            and m.kwargs["payload"]["run_id"] == run_id
            for m in s.scalars(select(OutboxMessage))
        )
        s.rollback()
        return found


def _audited_failure(sessions, run_id: str) -> bool:
    with sessions() as s:
        found = any(
            (e.after or {}).get("run_id") == run_id
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "directory_sync.failed")
            )
        )
        s.rollback()
        return found


def _reconfigure(sessions, connector, **fields) -> None:
    with sessions() as s:
        row = s.get_one(DirectoryConnector, connector.id)
        for name, value in fields.items():
            setattr(row, name, value)
        s.commit()


def test_a_crash_after_a_preset_switch_fails_the_run_with_an_alert(make_connector, sync, sessions):
    connector = make_connector()
    assert sync(connector).status == "succeeded"  # the watermark is now an OpenLDAP entryCSN
    _reconfigure(sessions, connector, preset="active_directory")  # counts uSNChanged numbers
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "failed"
    run = get_run(sessions, outcome.run_id)
    assert run.status is SyncRunStatus.FAILED and run.finished_at is not None
    assert run.error_code == "internal_error"
    assert run.error.startswith("ValueError: ") and "\n" not in run.error
    assert _alerted(sessions, outcome.run_id) and _audited_failure(sessions, outcome.run_id)
    assert all(r.status is not SyncRunStatus.RUNNING for r in connector_runs(sessions, connector))


def test_an_email_taken_while_a_bulk_import_reads_ends_the_run(
    make_connector, sessions, settings, directory, monkeypatch
):
    """On PostgreSQL a first import writes while it reads; an admin who creates one of its
    emails after it loaded the taken ones made its insert fail (a UniqueViolation), and the
    whole import with it. Now, as on SQLite, the import refuses that person as existing
    (models.directory.people_import.PeopleImport.write) and imports the others."""
    from worker.directory_create_stream import CreateStream

    connector = make_connector()
    late_email = f"dave@{directory.domain}"  # the last person read
    raced: list[str] = []

    def admin_creates_the_email() -> None:
        if not raced:
            with sessions() as s:
                org = s.get_one(Organisation, connector.organisation_id)
                factories.make_user(s, org, email=late_email)
                s.commit()
            raced.append(late_email)

    # Batches of one person, so the writer starts with the first create; the admin's user
    # is committed right after the import has read the emails already taken.
    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)
    start = CreateStream._start

    def started(self: CreateStream) -> None:
        start(self)
        admin_creates_the_email()

    monkeypatch.setattr(CreateStream, "_start", started)
    # SQLite writes nothing before the read ends: the admin's user comes once the import has
    # loaded the emails already taken (its reconciler starts), before the apply. (At the read's
    # progress instead, a loaded machine could still be loading them: the race was then lost
    # before the import began, and nothing was left for the apply to find.)
    reconcile = read._start

    def reconciling(*args: Any, **kwargs: Any) -> Any:
        started = reconcile(*args, **kwargs)
        if settings.is_sqlite:
            admin_creates_the_email()
        return started

    monkeypatch.setattr(read, "_start", reconciling)
    outcome = run_sync(sessions, settings, connector_id=connector.id)
    assert raced
    run = get_run(sessions, outcome.run_id)
    assert run.status is not SyncRunStatus.RUNNING and run.finished_at is not None
    assert outcome.status == "succeeded", outcome
    refused = [e["message"] for e in run.plan["apply_errors"]]
    assert refused == [f"{late_email} exists already"]
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "carol"]


@contextmanager
def _silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers LDAP: a sync against it hangs in its bind."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        yield f"ldap://127.0.0.1:{hung.getsockname()[1]}"


def _cli_sync(
    settings, slug: str, log: Path, lease_seconds: float = LEASE_SECONDS, **env: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from cli.main import main; main()"]
    command += ["ldap", "sync", "--org", slug, "--connector", "corp"]
    child_env = settings_env(
        settings, DIRECTORY_SYNC_LEASE_SECONDS=str(lease_seconds), LOG_LEVEL="ERROR", **env
    )
    return subprocess.Popen(
        command, cwd=ROOT, env=child_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _org_slug(sessions, connector) -> str:
    with sessions() as s:
        slug = s.get_one(Organisation, connector.organisation_id).slug
        s.rollback()
        return slug


def _running_run(sessions, connector) -> DirectorySyncRun | None:
    runs = connector_runs(sessions, connector)
    return next((r for r in runs if r.status is SyncRunStatus.RUNNING), None)


def _lease_live(sessions, connector) -> bool:
    with sessions() as s:
        live = live_leases(s, [lease_name(connector.id)], now=utcnow())
        s.rollback()
        return bool(live)


def test_a_sync_killed_with_sigkill_frees_its_lease_and_its_run_is_reaped(
    make_connector, sessions, settings, tmp_path, slapd
):
    connector = make_connector(connect_timeout=300.0, search_timeout=300.0)
    slug = _org_slug(sessions, connector)
    short = settings.model_copy(update={"directory_sync_lease_seconds": LEASE_SECONDS})
    with _silent_server() as url:
        _reconfigure(sessions, connector, server_urls=[url])
        child = _cli_sync(settings, slug, tmp_path / "sync.log")
        dead = wait_until(
            lambda: _running_run(sessions, connector), timeout=60, what="the CLI sync to start"
        )
        # the holder renews its lease: still taken past its first term
        first, renewed = lease_renewed_past_its_first_term(sessions, connector, LEASE_SECONDS)
        assert child.poll() is None, (tmp_path / "sync.log").read_text()
        # A sync started after the first term ran out, within the renewed one (the clock
        # stopped there: a late heartbeat on a loaded machine cannot let the lease lapse).
        with time_machine.travel(renewed - timedelta(seconds=1), tick=False):
            assert first < utcnow()
            held = run_sync(sessions, short, connector_id=connector.id, trigger="test")
        assert held.status == "skipped"
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert _running_run(sessions, connector) is not None  # nobody was left to end it
    _reconfigure(sessions, connector, server_urls=[slapd.url])
    wait_until(
        lambda: not _lease_live(sessions, connector),
        timeout=20 * LEASE_SECONDS,
        what="the dead holder's lease to expire",
    )
    outcome = run_sync(sessions, short, connector_id=connector.id, trigger="test")
    assert outcome.status == "succeeded", outcome
    reaped = get_run(sessions, str(dead.id))
    assert reaped.status is SyncRunStatus.FAILED and reaped.error_code == "sync_interrupted"
    assert _alerted(sessions, str(dead.id)) and _audited_failure(sessions, str(dead.id))
    assert {u.status for u in linked_users(sessions, connector).values()} == {UserStatus.ACTIVE}


def test_the_scheduler_reaps_a_run_whose_holder_died(make_connector, sessions, settings):
    from worker.tasks.directory import schedule_due

    connector = make_connector()
    with sessions() as s:
        run = DirectorySyncRun(
            organisation_id=connector.organisation_id,
            connector_id=connector.id,
            kind=SyncKind.FULL,
            trigger="a process that died",
        )
        s.add(run)
        s.commit()
        run_id = str(run.id)
    schedule_due.run()
    reaped = get_run(sessions, run_id)
    assert reaped.status is SyncRunStatus.FAILED and reaped.error_code == "sync_interrupted"
    assert _alerted(sessions, run_id)


def test_a_cli_sync_without_redis_does_not_overlap_one_with_redis(
    make_connector, sessions, settings, tmp_path
):
    """The lock is the database's, whichever variables each process happens to have."""
    # The first sync hangs in its bind and holds its lease until the test kills it: neither
    # its search timeout nor its lease can run out while the test lasts, however slowly a
    # loaded machine starts the processes. (With the 3 s lease of the test above, a late
    # heartbeat let it lapse: the second sync took the lease and hung in its own bind.)
    connector = make_connector(connect_timeout=300.0, search_timeout=HELD_SECONDS)
    slug = _org_slug(sessions, connector)
    redis_server = RedisServer(tmp_path).start()
    with _silent_server() as url:
        _reconfigure(sessions, connector, server_urls=[url])
        first_log = tmp_path / "with-redis.log"
        worker_like = _cli_sync(
            settings,
            slug,
            first_log,
            lease_seconds=HELD_SECONDS,
            REDIS_URL=redis_server.url,
            CELERY_BROKER_URL=redis_server.url,
        )
        try:
            wait_until(
                lambda: _running_run_of(worker_like, first_log, sessions, connector),
                timeout=PROCESS_BOUND,
                what="the first sync",
            )
            second = _cli_sync(
                settings,
                slug,
                tmp_path / "without-redis.log",
                lease_seconds=HELD_SECONDS,
                REDIS_URL="",
                CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
            )
            try:
                code = second.wait(timeout=PROCESS_BOUND)
            finally:
                if second.poll() is None:
                    second.kill()
                    second.wait()
            output = (tmp_path / "without-redis.log").read_text()
            assert code == 5, output  # skipped, see the exit codes in docs/ldap.md
            assert worker_like.poll() is None, first_log.read_text()  # still holding it
            statuses = sorted(r.status.value for r in connector_runs(sessions, connector))
            assert statuses == ["running", "skipped"], output
        finally:
            worker_like.kill()
            worker_like.wait()
            redis_server.kill()


def _running_run_of(
    child: subprocess.Popen[bytes], log: Path, sessions, connector
) -> DirectorySyncRun | None:
    """The connector's running run, once the child started it; a child that ended fails."""
    assert child.poll() is None, log.read_text()
    return _running_run(sessions, connector)


def test_cli_exit_codes_tell_quarantined_from_failed(make_connector, sessions, settings, directory):
    from click.testing import CliRunner

    from cli.main import main

    connector = make_connector(threshold_percent=10, threshold_count=1)
    slug = _org_slug(sessions, connector)
    runner = CliRunner(env=settings_env(settings))
    assert runner.invoke(main, ["ldap", "sync", "--org", slug]).exit_code == 0
    directory.delete(directory.person_dn("alice"))
    directory.delete(directory.person_dn("bob"))
    quarantined = runner.invoke(main, ["ldap", "sync", "--org", slug])
    assert quarantined.exit_code == 4, quarantined.output
    assert "quarantined" in quarantined.output
    _reconfigure(sessions, connector, base_dn=f"ou=nowhere-{uuid.uuid4().hex[:6]},{directory.base}")
    failed = runner.invoke(main, ["ldap", "sync", "--org", slug])
    assert failed.exit_code == 3, failed.output
