"""What the broker-outage tests of this folder share: a redis-server of the test's own, on a
free loopback port, that the test may kill and start again (never the machine's shared one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture
def blip_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()
