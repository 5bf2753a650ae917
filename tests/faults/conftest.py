"""What the fault tests share: the stand-in Odock (store and gateway), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.odock import OdockStandIn, start_stand_in


@pytest.fixture(scope="module")
def stand_in(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdockStandIn]:
    odock = start_stand_in(
        odock_sync_database_url=database_url, workdir=tmp_path_factory.mktemp("odock")
    )
    yield odock
    odock.stop()
