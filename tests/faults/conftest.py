"""What the fault tests share, one per test module: the stand-in Odock (store and gateway), and
a broker (redis-server) of the module's own, to pause or kill."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.support.odock import OdockStandIn, start_stand_in
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def stand_in(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdockStandIn]:
    odock = start_stand_in(
        odock_sync_database_url=database_url, workdir=tmp_path_factory.mktemp("odock")
    )
    yield odock
    odock.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("broker")).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)  # a test that failed while it was paused
    server.kill()
