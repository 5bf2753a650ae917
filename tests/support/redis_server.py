"""A redis-server of a test's own on a free loopback port, which the test may kill and restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.support.net import start_on_a_free_port, wait_listening


class RedisServer:
    """One redis-server process; `kill` and `start` again keep the same port (an empty cache)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0  # chosen by the first start
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port the first time, on the same port after `kill`."""
        if self.port:
            self._start_on(self.port)
        else:
            start_on_a_free_port(self._start_on)
        return self

    def _start_on(self, port: int) -> None:
        self.port = port
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        log = self.workdir / f"redis-{port}.log"
        self.process = subprocess.Popen(
            command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_listening(self.process, [port], log, timeout=10)
        self._wait_ready()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)

    def _wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout}s")
