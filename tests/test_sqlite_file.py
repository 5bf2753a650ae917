"""The embedded database's file: made private without disturbing the connections on it."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

from models.db import enter_wal, private_sqlite_file


def test_making_the_file_private_keeps_the_locks_of_open_connections(tmp_path: Path) -> None:
    """Closing any descriptor of a database file drops every POSIX lock the process holds on
    it; another process closing its last connection would then take the WAL our open
    connection still writes to for its own and delete it (the suite's 'database disk image is
    malformed' when the CLI or a test built a second engine on the same file)."""
    path = tmp_path / "odock.sqlite3"
    ours = sqlite3.connect(path, isolation_level=None)
    ours.execute("PRAGMA journal_mode=WAL")
    ours.execute("CREATE TABLE t (x)")
    ours.execute("INSERT INTO t VALUES (1)")

    private_sqlite_file(f"sqlite:///{path}")
    another_process_reads(path)  # and closes its connection, its last one

    assert Path(f"{path}-wal").exists(), "the WAL of our open connection was taken away"
    ours.execute("INSERT INTO t VALUES (2)")
    assert another_process_reads(path) == [1, 2]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ours.close()


def test_a_new_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    private_sqlite_file(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def another_process_reads(path: Path) -> list[int]:
    script = (
        "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        "print(json.dumps([x for (x,) in c.execute('SELECT x FROM t ORDER BY x')])); c.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=True, capture_output=True, text=True
    )
    values: list[int] = json.loads(done.stdout)
    return values


def test_switching_to_wal_while_another_connection_reads_waits_for_it(tmp_path: Path) -> None:
    """SQLite can answer the switch to WAL "database is locked" at once, without waiting (two
    processes opening a fresh file together deadlock on their lock upgrades; here: a reader
    holds the file and the switching connection has no busy timeout). The switch tries again
    instead of failing the process that opened the file."""
    path = tmp_path / "fresh.sqlite3"
    sqlite3.connect(path, isolation_level=None).execute("CREATE TABLE t (x)")
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a shared lock, held until the rollback
    switching = sqlite3.connect(path, isolation_level=None, timeout=0)
    threading.Timer(0.3, reader.rollback).start()

    enter_wal(switching.cursor())

    assert switching.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    switching.close()
    reader.close()
