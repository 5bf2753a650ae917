"""The reconcile against a loopback management plane serving the contract's paged listings."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug import Request, Response

from connectors.odock_listing import ListingFailed, list_pages, prefetched
from models.actions import odock_reconcile
from models.entities import AuditEvent, Budget, OdockReconcileRun, OdockTombstone, VirtualApiKey
from tests.odock_inbound.conftest import bridge, key_body
from tests.support.slow_proxy import slow_proxy
from tests.support.state import database_state, only_the_run_was_recorded
from tests.support.wait import wait_until

PAGE = 2


def listing(httpserver, org_id, items_by_kind: dict[str, list[dict[str, Any]]], fail_page=None):
    """Serve GET /mgmt/v1/sync/{keys|budgets|quotas}, PAGE items a page; `fail_page` (1-based)
    of the keys answers 500."""

    def handler(request: Request) -> Response:
        kind = request.path.rsplit("/", 1)[-1]
        assert request.headers["Authorization"] == "Bearer mgmt-token"
        assert request.args["organisation_id"] == str(org_id)
        items = items_by_kind.get(kind, [])
        start = int(request.args.get("cursor", "0"))
        if kind == "keys" and fail_page == start // PAGE + 1:
            return Response("boom", status=500)
        end = start + PAGE
        body = {"items": items[start:end], "next_cursor": str(end) if end < len(items) else None}
        return Response(json.dumps(body), content_type="application/json")

    for kind in ("keys", "budgets", "quotas"):
        httpserver.expect_request(f"/mgmt/v1/sync/{kind}").respond_with_handler(handler)


def listed(key_id, body):
    return {"id": str(key_id), **body}


def held_keys(session) -> dict[uuid.UUID, int]:
    found = {key.id: key.version for key in session.scalars(select(VirtualApiKey))}
    session.rollback()
    return found


def test_the_reconcile_repairs_drift_and_reports_it(
    bridged, session, engine, httpserver, bridged_settings
):
    same, changed, gone, new = (uuid.uuid4() for _ in range(4))
    for key_id in (same, changed, gone):
        bridged.put("keys", key_id, key_body(bridged.owner, version=1))
    budget_id = uuid.uuid4()
    budget = {
        "id": str(budget_id),
        "owner_type": "USER",
        "owner_email": bridged.owner.email,
        "name": "monthly",
        "amount": "10",
        "window": "monthly",
        "version": 1,
    }
    listing(
        httpserver,
        bridged.org.id,
        {
            "keys": [
                listed(same, key_body(bridged.owner, version=1)),
                listed(changed, key_body(bridged.other, version=2)),
                listed(new, key_body(bridged.owner, version=1)),
            ],
            "budgets": [budget],
        },
    )

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "succeeded"
    assert (run.summary["key"]["created"], run.summary["key"]["updated"]) == (1, 1)
    assert (run.summary["key"]["deleted"], run.summary["key"]["unchanged"]) == (0, 1)
    assert run.summary["key"]["unseen"] == 1 and run.summary["key"]["ids"]["unseen"] == [str(gone)]
    assert run.summary["budget"]["created"] == 1 and run.summary["drift"] == 3
    # Lacked by one listing, kept (and unseen): one listing is no proof that it is gone.
    assert held_keys(session) == {same: 1, changed: 2, new: 1, gone: 1}
    assert session.get_one(VirtualApiKey, changed).owner_user_id == bridged.other.id
    assert session.get_one(Budget, budget_id).owner_id == bridged.owner.id
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"odock.keys.loaded", "odock.keys.unseen", "odock.reconcile.finished"} <= actions
    session.rollback()

    for _ in range(bridged_settings.odock_forget_after_listings - 1):
        again = odock_reconcile.reconcile_from_management_plane(
            engine, bridged_settings, bridged.org.id
        )
    assert again.status == "succeeded" and again.summary["drift"] == 1
    assert again.summary["key"]["ids"]["deleted"] == [str(gone)]
    assert held_keys(session) == {same: 1, changed: 2, new: 1}
    tombstone = session.scalars(select(OdockTombstone)).one()
    assert (tombstone.object_id, tombstone.version) == (gone, 1)
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "odock.keys.deleted"))
    session.rollback()

    steady = odock_reconcile.reconcile_from_management_plane(
        engine, bridged_settings, bridged.org.id
    )
    assert steady.status == "succeeded" and steady.summary["drift"] == 0


def test_a_key_lacked_by_a_listing_and_pushed_again_is_no_longer_unseen(
    bridged, session, engine, httpserver, bridged_settings
):
    """A push newer than the held key is Odock's word that it exists: the count of listings
    that lacked it starts again, so it is not forgotten by the next ones."""
    missed, listed_too = uuid.uuid4(), uuid.uuid4()
    for key_id in (missed, listed_too):
        bridged.put("keys", key_id, key_body(bridged.owner, version=1))
    listing(
        httpserver,
        bridged.org.id,
        {"keys": [listed(listed_too, key_body(bridged.owner, version=1))]},
    )
    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)
    assert run.summary["key"]["unseen"] == 1
    assert session.get_one(VirtualApiKey, missed).unseen_listings == 1
    session.rollback()

    assert bridged.put("keys", missed, key_body(bridged.owner, version=2)).status_code == 200

    key = session.get_one(VirtualApiKey, missed)
    assert (key.unseen_listings, key.unseen_since, key.version) == (0, None, 2)
    updated = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "odock.key.updated", AuditEvent.target_id == str(missed)
        )
    ).one()
    assert updated.before["unseen_listings"] == 1 and updated.after["unseen_listings"] == 0


def test_a_page_answering_500_makes_the_listing_incomplete_and_nothing_is_deleted(
    bridged, session, engine, httpserver, bridged_settings
):
    kept, changed, beyond = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for key_id in (kept, changed):
        bridged.put("keys", key_id, key_body(bridged.owner, version=1))
    listing(
        httpserver,
        bridged.org.id,
        {
            "keys": [
                listed(changed, key_body(bridged.owner, version=3)),
                listed(uuid.uuid4(), key_body(bridged.owner, version=1)),
                listed(beyond, key_body(bridged.owner, version=1)),
            ]
        },
        fail_page=2,
    )

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "incomplete"
    assert run.summary["key"]["complete"] is False
    assert "page 2 answered 500" in run.summary["key"]["failure"]
    assert run.summary["key"]["deleted"] == 0
    held = held_keys(session)
    assert kept in held and held[changed] == 3 and beyond not in held
    stored = session.scalars(select(OdockReconcileRun)).one()
    assert stored.status == "incomplete"


def test_an_unusable_item_is_reported_and_its_held_copy_kept(
    bridged, session, engine, httpserver, bridged_settings
):
    strange = uuid.uuid4()
    bridged.put("keys", strange, key_body(bridged.owner, version=1))
    unknown_owner = key_body(version=2, type="USER", owner_email="ghost@example.com")
    unknown_owner.pop("owner_user_id")
    listing(httpserver, bridged.org.id, {"keys": [listed(strange, unknown_owner)]})

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "succeeded"
    assert run.summary["key"]["rejected"] == 1 and run.summary["key"]["deleted"] == 0
    assert "ghost@example.com" in run.summary["key"]["ids"]["rejected"][0]
    assert held_keys(session) == {strange: 1}


def test_an_item_owned_by_another_organisations_key_is_rejected_and_its_held_copy_kept(
    bridged, session, sessions, settings, engine, httpserver, bridged_settings
):
    """The listing names a key of another organisation as the owner of a budget held here:
    rejected as the push would refuse it (422), the held budget neither updated nor deleted."""
    elsewhere = bridge(session, settings, bridged.client)
    their_key, budget_id = uuid.uuid4(), uuid.uuid4()
    assert elsewhere.put("keys", their_key, key_body(elsewhere.owner)).status_code == 200
    budget = {"owner_type": "TEAM", "owner_id": str(bridged.team.id), "name": "b", "amount": "5"}
    assert bridged.put("budgets", budget_id, {**budget, "version": 1}).status_code == 200
    taken = {**budget, "owner_type": "APIKEY", "owner_id": str(their_key), "version": 2}
    listing(httpserver, bridged.org.id, {"budgets": [listed(budget_id, taken)]})
    before = database_state(sessions)

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "succeeded"
    counts = run.summary["budget"]
    assert (counts["rejected"], counts["updated"], counts["deleted"]) == (1, 0, 0), counts
    assert counts["ids"]["rejected"] == [f"{budget_id}: no key {their_key} in this organisation"]
    only_the_run_was_recorded(before, database_state(sessions), "odock.reconcile.finished")


def test_an_item_with_a_time_beyond_the_calendar_is_reported_and_the_rest_loaded(
    bridged, session, engine, httpserver, bridged_settings
):
    """Such a time passed the check and failed in the database thread: the run crashed."""
    odd, fine = uuid.uuid4(), uuid.uuid4()
    bridged.put("keys", odd, key_body(bridged.owner, version=1))
    beyond = key_body(bridged.owner, version=2, created_at="0001-01-01T00:30:00+01:00")
    listing(
        httpserver,
        bridged.org.id,
        {"keys": [listed(odd, beyond), listed(fine, key_body(bridged.owner, version=1))]},
    )

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "succeeded"
    assert run.summary["key"]["rejected"] == 1 and run.summary["key"]["created"] == 1
    assert "created_at" in run.summary["key"]["ids"]["rejected"][0]
    assert held_keys(session) == {odd: 1, fine: 1}


@pytest.mark.parametrize("field", ["name", "masked_value"])
def test_an_item_with_a_nul_in_its_text_is_reported_and_the_rest_loaded(
    bridged, session, engine, httpserver, bridged_settings, field
):
    """The push refuses a NUL in its body; the listing is read by json itself, and the NUL
    reached PostgreSQL's COPY, which refused the chunk: the run died, unfinished (SQLite stores
    it)."""
    odd, fine = uuid.uuid4(), uuid.uuid4()
    bridged.put("keys", odd, key_body(bridged.owner, version=1))
    with_nul = key_body(bridged.owner, version=2, **{field: "ci\x00bot"})
    listing(
        httpserver,
        bridged.org.id,
        {"keys": [listed(odd, with_nul), listed(fine, key_body(bridged.owner, version=1))]},
    )

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "succeeded"
    assert run.summary["key"]["rejected"] == 1 and run.summary["key"]["created"] == 1
    assert f"{field}: Value error, a NUL character" in run.summary["key"]["ids"]["rejected"][0]
    assert held_keys(session) == {odd: 1, fine: 1}


def test_an_item_without_a_readable_id_deletes_nothing(
    bridged, session, engine, httpserver, bridged_settings
):
    held = uuid.uuid4()
    bridged.put("keys", held, key_body(bridged.owner, version=1))
    listing(httpserver, bridged.org.id, {"keys": [{"id": "nope", "version": 1}]})

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "incomplete" and run.summary["key"]["deleted"] == 0
    assert held_keys(session) == {held: 1}


def test_a_page_nested_deeper_than_python_parses_is_an_incomplete_listing_not_a_crash(
    bridged, session, engine, httpserver, bridged_settings
):
    """json raised RecursionError, which nothing caught: the reconcile died with its run
    left unfinished (no summary, no audit)."""
    held = uuid.uuid4()
    bridged.put("keys", held, key_body(bridged.owner, version=1))
    deep = b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b', "next_cursor": null}'
    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_data(
        deep, content_type="application/json"
    )

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "incomplete" and "not JSON" in run.summary["key"]["failure"]
    assert held_keys(session) == {held: 1}
    [finished] = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "odock.reconcile.finished")
    ).all()
    assert finished.after["status"] == "incomplete"


def _key_pages(httpserver, settings, *, limit: int) -> Iterator[list[Any]]:
    """The management plane's key listing at the test's server, `limit` items a page."""
    return list_pages(
        base_url=httpserver.url_for("/mgmt"),
        token="mgmt-token",
        kind="key",
        organisation_id=str(uuid.uuid4()),
        timeout=5,
        policy=settings.operator_outbound_policy(),
        limit=limit,
    )


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ({"items": [{"id": "x" * (200 * 1024)}], "next_cursor": None}, "larger than"),
        ({"items": [{}, {}, {}], "next_cursor": None}, "more than the 2 asked"),
    ],
)
def test_a_page_beyond_what_was_asked_ends_the_listing_before_it_is_held(
    httpserver, bridged_settings, page, reason
):
    """A page is read up to `limit` objects of 64 KiB each and then refused: a management
    plane that ignores the limit (or sends one huge object) no longer fills the worker's
    memory."""
    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_data(
        json.dumps(page), content_type="application/json"
    )
    pages = _key_pages(httpserver, bridged_settings, limit=2)
    with pytest.raises(ListingFailed, match=reason):
        list(pages)


def test_a_consumer_that_stops_early_leaves_no_reader_thread_behind(httpserver, bridged_settings):
    """The reader put the listing's end (or its error) with a blocking put: once the pages
    ahead filled the queue and the consumer had stopped (the reconcile failed mid-listing),
    the thread and its HTTP connection waited forever, one more per failed run."""
    items = [{"id": str(uuid.uuid4()), "version": 1} for _ in range(3)]  # one taken, two queued

    def handler(request: Request) -> Response:
        start = int(request.args.get("cursor", "0"))
        end = start + 1
        body = {"items": items[start:end], "next_cursor": str(end) if end < len(items) else None}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_handler(handler)
    before = set(threading.enumerate())
    pages = prefetched(
        _key_pages(httpserver, bridged_settings, limit=1),
        depth=2,
    )
    assert next(pages) == items[:1]
    [reader] = [t for t in set(threading.enumerate()) - before if t.name == "odock-listing"]
    wait_until(lambda: len(httpserver.log) == len(items), what="the whole listing read ahead")

    pages.close()  # the consumer stops, the queue full and the listing's end still to hand

    wait_until(lambda: not reader.is_alive(), what="the reader thread ended")


def test_a_listing_whose_cursor_is_fresh_every_time_ends_incomplete_by_the_next_run(
    bridged, session, engine, httpserver, bridged_settings
):
    """No cursor repeats, so the loop check never fired: the reconcile listed without end (a
    management plane whose paging has lost its place), its run never finished. The listing now
    ends when the next interval's run is due. The stand-in stops after GIVE_UP pages, which at
    a hundredth of a second each is far longer than the interval here."""
    give_up, served = 5000, []
    held = uuid.uuid4()
    bridged.put("keys", held, key_body(bridged.owner, version=1))

    def endless(request: Request) -> Response:
        served.append(request.args.get("cursor"))
        if len(served) > give_up:
            return Response("the test gave up", status=500)
        time.sleep(0.01)
        body = {"items": [], "next_cursor": uuid.uuid4().hex}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_handler(endless)
    settings = bridged_settings.model_copy(update={"odock_reconcile_interval": 1.0})

    run = odock_reconcile.reconcile_from_management_plane(engine, settings, bridged.org.id)

    assert run.status == "incomplete" and run.summary["key"]["deleted"] == 0
    assert "did not end within 1 s" in run.summary["key"]["failure"]
    assert len(served) < give_up
    assert held_keys(session) == {held: 1}


def test_an_empty_listing_does_not_delete_everything(
    bridged, session, engine, httpserver, bridged_settings
):
    held = uuid.uuid4()
    bridged.put("keys", held, key_body(bridged.owner, version=1))
    listing(httpserver, bridged.org.id, {})

    run = odock_reconcile.reconcile_from_management_plane(engine, bridged_settings, bridged.org.id)

    assert run.status == "incomplete" and "empty" in run.summary["key"]["failure"]
    assert held_keys(session) == {held: 1}


def test_the_cli_reconciles_and_says_why_it_cannot(run, bridged, httpserver, monkeypatch, session):
    new = uuid.uuid4()
    listing(httpserver, bridged.org.id, {"keys": [listed(new, key_body(bridged.owner))]})
    refused = run("odock", "reconcile", "--org", bridged.org.slug, ok=False)
    assert "ODOCK_MANAGEMENT_URL" in refused.output

    monkeypatch.setenv("ODOCK_MANAGEMENT_URL", httpserver.url_for("/mgmt"))
    monkeypatch.setenv("ODOCK_MANAGEMENT_TOKEN", "mgmt-token")
    result = run("odock", "reconcile", "--org", bridged.org.slug)
    assert "keys: 1 seen, 1 created" in result.output
    assert new in held_keys(session)


def test_beat_reconciles_only_in_bridged_mode_with_an_address(settings, bridged_settings):
    from worker.celery_app import beat_schedule

    assert "odock-reconcile" not in beat_schedule(settings)
    assert "odock-reconcile" not in beat_schedule(
        bridged_settings.model_copy(update={"odock_management_url": ""})
    )
    entry = beat_schedule(bridged_settings)["odock-reconcile"]
    assert entry["task"] == "odock.reconcile_due"
    assert entry["schedule"].total_seconds() == bridged_settings.odock_reconcile_interval


def test_organisations_with_a_live_odock_token_are_the_ones_reconciled(bridged, session):
    from models.actions import tokens
    from models.entities import Organisation
    from models.enums import TokenScope
    from tests.support import factories as f

    other = f.make_org(session)
    revoked = tokens.create_token(
        session, organisation=other, scope=TokenScope.ODOCK, actor=f.SETUP
    )
    tokens.revoke_token(session, token=revoked.token, actor=f.SETUP)
    session.commit()

    found = odock_reconcile.bridged_organisations(session)

    assert found == [bridged.org.id]
    assert session.get_one(Organisation, other.id) is not None


def test_a_page_trickled_past_odock_timeout_ends_the_listing_incomplete_and_deletes_nothing(
    bridged, session, engine, httpserver, bridged_settings
):
    """Each piece came well within the read timeout, so a server trickling its page held the
    reconcile for as long as it liked; ODOCK_TIMEOUT now bounds the whole page."""
    held, other = uuid.uuid4(), uuid.uuid4()
    bridged.put("keys", held, key_body(bridged.owner, version=1))
    # Read whole, this listing (without the held key) would delete it.
    listing(
        httpserver, bridged.org.id, {"keys": [listed(other, key_body(bridged.owner, version=1))]}
    )
    with slow_proxy(httpserver.url_for("/"), delay=0.01, piece=1, scheme="http") as proxied:
        trickled = bridged_settings.model_copy(
            update={"odock_management_url": f"{proxied}/mgmt", "odock_timeout": 0.5}
        )

        run = odock_reconcile.reconcile_from_management_plane(engine, trickled, bridged.org.id)

    assert run.status == "incomplete" and run.summary["key"]["deleted"] == 0
    assert "within" in run.summary["key"]["failure"]
    assert held_keys(session) == {held: 1}


@pytest.mark.parametrize(
    ("asked", "waits", "said"),
    [("600", 600.0, "600"), ("86400", None, "86400"), ("9" * 400, None, "1000000000")],
    ids=["600", "day", "beyond-a-float"],
)
def test_a_management_plane_asking_to_wait_is_listed_again_no_sooner_nor_past_the_next_run(
    bridged, session, httpserver, bridged_settings, monkeypatch, asked, waits, said
):
    """A listing answered 429 with Retry-After is tried again no sooner than it asked; one that
    asks past the next interval's run (ODOCK_RECONCILE_INTERVAL, an hour) is left to that run.
    The run says why it is incomplete, the wait named (one beyond what a float holds as at most
    a billion seconds, which the run's JSON summary can store). Before, the Retry-After was
    ignored and the reconcile listed again after ODOCK_RECONCILE_RETRY_BASE (30 s), into the
    same 429."""
    from celery.exceptions import Retry

    from worker.celery_app import celery_app
    from worker.runtime import runtime
    from worker.tasks.odock_reconcile import reconcile_organisation

    monkeypatch.setattr(runtime(), "settings", bridged_settings)
    held: list[dict] = []  # messages kept from the broker: only this test runs it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": asked})
    )
    listing(httpserver, bridged.org.id, {})
    organisation = str(bridged.org.id)

    reconcile_organisation.push_request(
        id="reconcile-1", called_directly=False, retries=0, args=[organisation], kwargs={}
    )
    try:
        if waits is None:
            assert reconcile_organisation.run(organisation)["status"] == "incomplete"
        else:
            with pytest.raises(Retry) as retried:
                reconcile_organisation.run(organisation)
            assert retried.value.when == waits
    finally:
        reconcile_organisation.pop_request()

    retries = [kw["countdown"] for kw in held if kw.get("task_id") == "reconcile-1"]
    assert retries == ([] if waits is None else [waits])
    run = session.scalars(select(OdockReconcileRun)).one()
    assert run.status == "incomplete" and run.summary["key"]["deleted"] == 0
    assert run.summary["key"]["failure"] == f"page 1 answered 429 (Retry-After {said} s)"


@pytest.mark.parametrize("refusal", [401, 403])
def test_a_management_plane_refusing_the_token_is_not_listed_again_before_the_next_run(
    bridged, session, httpserver, bridged_settings, monkeypatch, refusal
):
    """A token the management plane does not take stays refused until an operator changes
    ODOCK_MANAGEMENT_TOKEN: the reconcile was retried after 30, 60, 120 and 240 s into the same
    refusal. Now the run says credentials_refused (kept in its audited summary), the worker
    logs the error, and the next interval's run asks again."""
    from worker.celery_app import celery_app
    from worker.runtime import runtime
    from worker.tasks.odock_reconcile import reconcile_organisation

    monkeypatch.setattr(runtime(), "settings", bridged_settings)
    held: list[dict] = []  # messages kept from the broker: only this test runs it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    httpserver.expect_request("/mgmt/v1/sync/keys").respond_with_response(
        Response("who are you", status=refusal)
    )
    listing(httpserver, bridged.org.id, {})
    organisation = str(bridged.org.id)

    reconcile_organisation.push_request(
        id="reconcile-1", called_directly=False, retries=0, args=[organisation], kwargs={}
    )
    try:
        assert reconcile_organisation.run(organisation)["status"] == "incomplete"
    finally:
        reconcile_organisation.pop_request()

    assert [kw for kw in held if kw.get("task_id") == "reconcile-1"] == []
    run = session.scalars(select(OdockReconcileRun)).one()
    assert run.summary["key"]["credentials_refused"] is True
    assert run.summary["key"]["failure"] == f"page 1 answered {refusal}"
