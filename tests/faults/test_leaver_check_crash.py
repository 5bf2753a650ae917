"""A web process killed between a key write's commit and its leaver check: the check's
backstop (models.actions.leaver_checks) revokes the leaver's key, not the hourly sweep.

The race it needs (the holder read ACTIVE by the write, revoked and reviewed before the write
commits) exists only where writers run side by side: PostgreSQL. On SQLite the revocation
waits for the write (BEGIN IMMEDIATE), and its review sees the key."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from sqlalchemy import select

from models.entities import ReviewFinding, VirtualApiKey
from tests.odock_inbound.conftest import bridge, key_body
from tests.odock_inbound.leaver_races import revoke_with_review
from tests.support.parallel import in_thread
from tests.support.relay import wait_relaying
from tests.support.served import web_alone
from tests.support.wait import wait_until
from tests.support.worker import settings_env

pytestmark = pytest.mark.slow


def test_a_key_pushed_as_its_owner_is_revoked_is_revoked_though_the_web_died_before_its_check(
    session, sessions, settings, client, worker, tmp_path
):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("writers are serial on SQLite: the revocation's review sees the key")
    bridged = bridge(session, settings, client)
    key_id = uuid.uuid4()
    setup = f"import tests.support.held_commit as h; h.install({str(key_id)!r}, {str(tmp_path)!r})"

    with web_alone(settings_env(settings), tmp_path, setup=setup) as url:
        pushed, out = in_thread(
            lambda: requests.put(
                f"{url}/odock/v1/keys/{key_id}",
                json=key_body(bridged.owner),
                headers=bridged.auth,
                timeout=60,
            )
        )
        wait_until(lambda: (tmp_path / "held").exists(), what="the key's write to be held")
        revoke_with_review(session, bridged.owner.id)
        (tmp_path / "go").touch()
        pushed.join(60)
    assert isinstance(out.get("error"), requests.ConnectionError), out  # killed, no answer
    assert _key(sessions, key_id).revoked is False  # the write committed; its check never ran
    died = time.monotonic()

    wait_relaying(lambda: _key(sessions, key_id).revoked, what="the key revoked", timeout=60)

    assert time.monotonic() - died < 60  # not REVIEW_SWEEP_INTERVAL (an hour): no sweep ran
    with sessions() as fresh:
        (finding,) = fresh.scalars(select(ReviewFinding).where(ReviewFinding.subject_id == key_id))
        assert (finding.action, finding.action_taken) == ("revoked", True)


def _key(sessions, key_id: uuid.UUID) -> VirtualApiKey:
    with sessions() as fresh:
        return fresh.get_one(VirtualApiKey, key_id)
