"""CPU time used by processes of this machine, read from /proc (Linux), for benchmarks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process so far (those already gone are left out)."""
    seconds = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            seconds[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings; a process started meanwhile counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def session_pids(leader: int) -> list[int]:
    """A process started with `start_new_session`, and every process of its session."""
    return [pid for pid, fields in _all_stats() if int(fields[3]) == leader]


def database_pids(database: str) -> list[int]:
    """The local PostgreSQL server processes serving `database` (none if it runs elsewhere)."""
    pids = []
    for pid, _fields in _all_stats():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"postgres:") and f" {database} ".encode() in command:
            pids.append(pid)
    return pids


def _all_stats() -> Iterator[tuple[int, list[str]]]:
    for name in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(int(name))
        if fields is not None:
            yield int(name), fields


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ... utime, stime."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
