"""Loopback ports for tests that start servers of their own, without racing other processes.

A port seen free and bound later can be taken in between: by another test's server, or as the
source port of any connection opened on the machine meanwhile. So a server of ours in this
process binds port 0 and reports the port it got (`bound_listener`, werkzeug's
`make_server("127.0.0.1", 0, ...)`); an external program is started on a port seen free and,
if it finds that port taken, started again on another (`start_on_a_free_port`), having been
waited for until it, not another process, listens there (`wait_listening`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from tests.support.processes import descendants
from tests.support.wait import wait_until

T = TypeVar("T")

# How slapd, redis-server, gunicorn and node say that a port they bind is taken.
ADDRESS_IN_USE = ("Address already in use", "EADDRINUSE")
ATTEMPTS = 5
LISTEN = "0A"  # the TCP state in /proc/net/tcp


class PortTaken(Exception):
    """A program could not bind its port: another process took it after it was picked."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for `start_on_a_free_port`:
    it may be taken before a program binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_on_a_free_port(start: Callable[[int], T], *, attempts: int = ATTEMPTS) -> T:
    """`start(port)` on a free port, again on another one each time it raises PortTaken (its
    program found the port taken and was stopped)."""
    for _ in range(attempts - 1):
        try:
            return start(free_port())
        except PortTaken:
            continue
    return start(free_port())


def bound_listener() -> socket.socket:
    """A socket listening on a loopback port of its own (bound to port 0), to hand over to a
    server (werkzeug's `make_server(..., fd=...)`) whose port must be known before it starts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused, for as long as the block runs: bound
    without listening, so no other process can listen there meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def wait_listening(
    process: subprocess.Popen[bytes],
    ports: list[int],
    log: Path,
    *,
    timeout: float = 60,
) -> None:
    """Wait until `process` (or a process it started) listens on each of `ports`. PortTaken
    if its log says a port was in use, AssertionError if it exited or never listened (either
    way the process and its children killed)."""

    def listening() -> bool:
        logged = log.read_text(errors="replace")
        if any(marker in logged for marker in ADDRESS_IN_USE):
            _kill_family(process)
            raise PortTaken(f"{process.args!r} found a port of {ports} taken:\n{logged[-2000:]}")
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited:\n{logged[-5000:]}")
        return all(_listens({process.pid, *descendants(process.pid)}, port) for port in ports)

    try:
        wait_until(listening, timeout=timeout, interval=0.05, what=f"a listener on {ports}")
    except AssertionError:
        _kill_family(process)
        raise


def _listens(pids: set[int], port: int) -> bool:
    """Whether one of `pids` holds the socket that listens on 127.0.0.1:`port`."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False


def _listening_inodes(port: int) -> set[str]:
    local = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == LISTEN:
            inodes.add(fields[9])
    return inodes


def _kill_family(process: subprocess.Popen[bytes]) -> None:
    for pid in descendants(process.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait()
