"""A delivery the database refuses fails alone, not the batch it was stored with
(webhooks.group_commit): concurrent requests over real HTTP, one of them for an organisation
deleted while this process still holds its hook's credentials (EVENT_HOOK_CACHE_SECONDS), so
its row breaks the foreign key and the batch's one statement fails."""

from __future__ import annotations

import pytest
import requests
from flask import Flask
from sqlalchemy import delete, select, text

from models.entities import Organisation, ReceivedDelivery
from models.settings import Settings
from tests.events.conftest import Hooked, configure, signed
from tests.scim.conftest import live_server as _live_server
from tests.support import factories as f
from tests.support.parallel import in_thread
from tests.support.wait import wait_until
from webhooks.group_commit import GroupCommit
from webhooks.idp_hooks import STORE

live_server = _live_server
KEPT = 3  # deliveries of a live organisation stored in the same batch as the refused one


@pytest.fixture
def app(apps, settings: Settings, clean_db: None) -> Flask:
    """Credentials remembered for a minute: a deleted organisation's hook still authenticates."""
    return apps.for_settings(settings.model_copy(update={"event_hook_cache_seconds": 60}))


@pytest.fixture(autouse=True)
def drains_not_sent(monkeypatch) -> None:
    from worker.celery_app import celery_app

    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)


def send(base: str, hooked: Hooked, delivery_id: str) -> requests.Response:
    body, headers = signed(hooked.signing_secret, {"type": "user.deactivated"}, delivery_id)
    return requests.post(base + hooked.events_url, data=body, headers=headers, timeout=60)


def hold_the_deliveries_table(holder) -> None:
    """Stores wait until `holder` commits (SQLite: any write takes the database's lock)."""
    if holder.get_bind().dialect.name == "postgresql":
        holder.execute(text("LOCK TABLE received_deliveries IN EXCLUSIVE MODE"))
    else:
        holder.execute(text("DELETE FROM received_deliveries WHERE delivery_id = 'none'"))


def queued(group: GroupCommit, count: int) -> bool:
    with group._condition:
        return len(group._waiting) == count


def test_a_delivery_the_database_refuses_fails_alone_and_its_batch_is_stored(
    app, live_server, session, sessions, settings
):
    kept = configure(session, settings, f.make_org(session))
    gone = configure(session, settings, f.make_org(session))
    session.commit()
    for hooked in (kept, gone):  # their credentials cached (SQLite: no read waits on the hold)
        assert send(live_server, hooked, "msg_before").status_code == 202
    session.execute(delete(Organisation).where(Organisation.id == gone.org.id))
    session.commit()
    group: GroupCommit = app.extensions[STORE]

    with sessions() as holder:
        hold_the_deliveries_table(holder)
        first, first_out = in_thread(lambda: send(live_server, kept, "msg_first"))
        wait_until(lambda: group._storing, what="the first delivery's store to wait")
        sent = [f"msg_kept_{n}" for n in range(KEPT)]
        calls = [in_thread(lambda d=d: send(live_server, kept, d)) for d in sent]  # type: ignore[misc]
        refused, refused_out = in_thread(lambda: send(live_server, gone, "msg_gone"))
        wait_until(lambda: queued(group, KEPT + 1), what="the others queued as one batch")
        holder.commit()
    for thread, _ in [(first, first_out), *calls, (refused, refused_out)]:
        thread.join(60)

    answers = [out["result"] for _, out in calls]
    assert [a.status_code for a in answers] == [202] * KEPT, [a.text for a in answers]
    assert first_out["result"].status_code == 202
    answer = refused_out["result"]
    assert answer.status_code == 404, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["title"] == "unknown_hook"
    with sessions() as fresh:
        stored = fresh.scalars(
            select(ReceivedDelivery.delivery_id).where(
                ReceivedDelivery.organisation_id == kept.org.id
            )
        )
        assert sorted(stored) == sorted(["msg_before", "msg_first", *sent])
