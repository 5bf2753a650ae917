"""The receivers: authentication on the raw body, one stored delivery per id, clear refusals."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from models.entities import OutboxMessage, ReceivedDelivery
from tests.events import okta_payloads as okta
from tests.events.conftest import OKTA_SECRET, configure, okta_headers, signed
from tests.support import factories as f

# The reference vector published with the Standard Webhooks specification.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TIMESTAMP = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
REF_HEADERS = {
    "webhook-id": REF_ID,
    "webhook-timestamp": str(REF_TIMESTAMP),
    "webhook-signature": REF_SIGNATURE,
    "Content-Type": "application/json",
}


def stored(session) -> int:
    count = session.scalar(select(func.count()).select_from(ReceivedDelivery))
    session.rollback()
    return count


def deactivate_delivery() -> dict:
    target = okta.user_target("00u1qw1mqitPHM8AJ0g8", "jane.doe@example.com")
    return okta.delivery(okta.event("user.lifecycle.deactivate", [target]))


# Okta one-time verification


def test_okta_verification_echoes_the_challenge_to_the_configured_secret(client, hooked):
    response = client.get(
        hooked.okta_url,
        headers={**okta_headers(), "X-Okta-Verification-Challenge": "rBAPkE0l8mW1xC-qm0VhTW"},
    )
    assert response.status_code == 200
    assert response.json == {"verification": "rBAPkE0l8mW1xC-qm0VhTW"}


def test_okta_verification_with_a_wrong_or_missing_secret_is_refused(client, hooked):
    challenge = {"X-Okta-Verification-Challenge": "rBAPkE0l8mW1xC-qm0VhTW"}
    for headers in ({**okta_headers("wrong-secret-value-000"), **challenge}, challenge):
        response = client.get(hooked.okta_url, headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert "rBAPkE0l8mW1xC-qm0VhTW" not in response.get_data(as_text=True)


def test_okta_custom_header_is_required_too(client, session, settings):
    from models.actions import event_hooks

    org = f.make_org(session)
    event_hooks.set_okta_secret(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        secret=OKTA_SECRET,
        custom_header=("X-Odock-Hook", "second-factor"),
    )
    session.commit()
    url = f"/hooks/okta/{org.slug}"
    challenge = {"X-Okta-Verification-Challenge": "abc"}
    assert client.get(url, headers={**okta_headers(), **challenge}).status_code == 401
    both = {**okta_headers(), **challenge, "X-Odock-Hook": "second-factor"}
    assert client.get(url, headers=both).json == {"verification": "abc"}


def test_unknown_organisation_or_unconfigured_hook_is_not_found(client, session, settings):
    bare = f.make_org(session)
    session.commit()
    assert client.post("/hooks/okta/no-such-org", headers=okta_headers()).status_code == 404
    assert client.post(f"/hooks/okta/{bare.slug}", headers=okta_headers()).status_code == 404
    assert client.post(f"/hooks/events/{bare.slug}", data=b"{}").status_code == 404


# Okta deliveries


def test_okta_delivery_is_stored_once_and_a_replay_is_a_no_op(client, session, hooked, monkeypatch):
    sent = record_sent_tasks(monkeypatch)
    payload = deactivate_delivery()
    first = client.post(hooked.okta_url, json=payload, headers=okta_headers())
    again = client.post(hooked.okta_url, json=payload, headers=okta_headers())

    assert first.status_code == 200 and first.json["status"] == "accepted"
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    delivery = session.scalars(select(ReceivedDelivery)).one()
    assert delivery.delivery_id == payload["eventId"] and delivery.channel == "okta"
    assert sent == [("events.drain", {"organisation_id": str(hooked.org.id)})]


def test_okta_delivery_with_a_wrong_secret_is_refused_and_not_stored(client, session, hooked):
    response = client.post(
        hooked.okta_url, json=deactivate_delivery(), headers=okta_headers("not-the-secret-0000")
    )
    assert response.status_code == 401
    assert stored(session) == 0


def test_okta_body_that_is_not_json_or_not_a_delivery_is_a_clear_400(client, session, hooked):
    for body in (b"not json {", b"\xff\xfe", b"[1, 2]", b'{"data": {"events": "x"}}'):
        response = client.post(hooked.okta_url, data=body, headers=okta_headers())
        assert response.status_code == 400, body
        assert response.json["title"] in {"invalid_json", "invalid_payload"}
    assert stored(session) == 0


def test_deliveries_after_a_utf8_byte_order_mark_are_read(client, session, hooked):
    """RFC 8259 section 8.1: a parser MAY ignore a leading BOM (.NET's UTF-8 writers add
    one); both receivers refused it as 'Expecting value at position 0'. The signature is of
    the bytes as sent, BOM included."""
    bom = b"\xef\xbb\xbf"
    okta_body = bom + json.dumps(deactivate_delivery()).encode()
    first = client.post(hooked.okta_url, data=okta_body, headers=okta_headers())
    assert first.status_code == 200 and first.json["status"] == "accepted", first.json
    body, headers = signed(hooked.signing_secret, bom + b'{"id": "e1", "type": "user.deactivated"}')
    second = client.post(hooked.events_url, data=body, headers=headers)
    assert second.status_code == 202 and second.json["status"] == "accepted", second.json
    assert stored(session) == 2


# Signed generic events


def test_signed_event_is_accepted_once(client, session, hooked):
    body, headers = signed(hooked.signing_secret, {"id": "e1", "type": "user.deactivated"})
    first = client.post(hooked.events_url, data=body, headers=headers)
    replay = client.post(hooked.events_url, data=body, headers=headers)
    assert first.status_code == 202 and first.json["status"] == "accepted"
    assert replay.status_code == 200 and replay.json["status"] == "duplicate"
    assert session.scalars(select(ReceivedDelivery.delivery_id)).all() == [headers["webhook-id"]]


def test_any_current_secret_verifies_during_rotation(client, session, settings, hooked):
    from models.actions import event_hooks

    newer = event_hooks.add_signing_secret(
        session, organisation=hooked.org, secret_key=settings.secret_key, actor=f.SETUP
    ).secret
    session.commit()
    for secret in (hooked.signing_secret, newer):
        body, headers = signed(secret, {"events": [{"type": "user.updated"}]})
        assert client.post(hooked.events_url, data=body, headers=headers).status_code == 202
    assert stored(session) == 2


def test_missing_wrong_stale_and_tampered_signatures_are_refused(client, session, hooked):
    body, good = signed(hooked.signing_secret, {"type": "user.deactivated"})
    missing = {k: v for k, v in good.items() if k != "webhook-signature"}
    _, other = signed("whsec_" + "A" * 44, {"type": "user.deactivated"}, good["webhook-id"])
    stale = {**good, "webhook-timestamp": str(int(time.time()) - 3600)}
    cases = [
        (body, missing, "missing_signature"),
        (body, {**good, "webhook-signature": other["webhook-signature"]}, "bad_signature"),
        (body, stale, "stale_timestamp"),
        (body.replace(b"deactivated", b"reactivated"), good, "bad_signature"),
        (body, {**good, "webhook-signature": "v1,garbage"}, "bad_signature"),
    ]
    for data, headers, reason in cases:
        response = client.post(hooked.events_url, data=data, headers=headers)
        assert response.status_code == 401, reason
        assert response.json["title"] == reason
    assert stored(session) == 0


def test_signed_body_that_is_not_json_is_refused_without_storing(client, session, hooked):
    for payload in (b"definitely not json", b"[1, 2, 3]", b'{"events": []}'):
        body, headers = signed(hooked.signing_secret, payload)
        response = client.post(hooked.events_url, data=body, headers=headers)
        assert response.status_code == 400, payload
    assert stored(session) == 0


def test_oversized_body_is_refused_before_it_is_read(client, session, settings, hooked):
    big = json.dumps({"type": "user.updated", "pad": "x" * settings.event_max_body_bytes})
    body, headers = signed(hooked.signing_secret, big.encode())
    response = client.post(hooked.events_url, data=body, headers=headers)
    assert response.status_code == 413 and response.json["title"] == "too_large"
    okta_big = client.post(hooked.okta_url, data=body, headers=okta_headers())
    assert okta_big.status_code == 413
    assert stored(session) == 0


def test_standard_webhooks_reference_vector(client, session, settings):
    from models.actions import event_hooks

    org = f.make_org(session)
    event_hooks.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP, secret=REF_SECRET
    )
    session.commit()
    url = f"/hooks/events/{org.slug}"

    today = client.post(url, data=REF_BODY, headers=REF_HEADERS)
    assert today.status_code == 401 and today.json["title"] == "stale_timestamp"
    with time_machine.travel(datetime.fromtimestamp(REF_TIMESTAMP + 10, UTC), tick=False):
        then = client.post(url, data=REF_BODY, headers=REF_HEADERS)
        forged = client.post(url, data=REF_BODY.replace(b"2", b"3"), headers=REF_HEADERS)
    assert then.status_code == 202, then.json
    assert forged.status_code == 401
    assert session.scalars(select(ReceivedDelivery.delivery_id)).all() == [REF_ID]


def test_another_organisations_secret_does_not_open_this_hook(client, session, settings, hooked):
    other = configure(session, settings, f.make_org(session))
    session.commit()
    body, headers = signed(other.signing_secret, {"type": "user.deactivated"})
    assert client.post(hooked.events_url, data=body, headers=headers).status_code == 401
    assert client.post(other.events_url, data=body, headers=headers).status_code == 202


def test_metrics_count_received_duplicates_and_rejections(client, hooked):
    def sample(name: str) -> float:
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    rejected = 'odock_idp_deliveries_rejected_total{channel="events",reason="missing_signature"}'
    before = sample(rejected)
    unsigned = {"Content-Type": "application/json"}
    assert client.post(hooked.events_url, data=b"{}", headers=unsigned).status_code == 401
    assert sample(rejected) == before + 1
    payload = deactivate_delivery()
    delivered = client.post(hooked.okta_url, json=payload, headers=okta_headers())
    assert delivered.status_code == 200 and delivered.json["status"] == "accepted", delivered.json
    text = client.get("/metrics").get_data(as_text=True)
    assert okta_deliveries_stored(text) == 1  # received/processed
    assert 'odock_idp_deliveries_received_total{channel="okta"}' in text


def test_metrics_count_the_deliveries_of_the_scraping_apps_own_database(
    client, hooked, settings, tmp_path
):
    """An app built later in the process on another database (a test's, here) leaves this
    app's /metrics reading its own: the stored figures were read from whichever app was built
    last, so a test file run after one that built such an app counted nothing."""
    from webhooks.app import create_app
    from webhooks.context import EXTENSION
    from worker.celery_app import configure_celery

    other = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/other.sqlite3"})
    create_app(other).extensions[EXTENSION].engine.dispose()
    configure_celery(settings)  # create_app configured the process's Celery app for its own
    delivered = client.post(hooked.okta_url, json=deactivate_delivery(), headers=okta_headers())

    assert delivered.status_code == 200 and delivered.json["status"] == "accepted", delivered.json
    assert okta_deliveries_stored(client.get("/metrics").get_data(as_text=True)) == 1


def okta_deliveries_stored(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('odock_idp_deliveries{channel="okta"')
    )


def test_broker_down_at_commit_keeps_the_delivery_and_the_sweep_wakes_its_drain_later(
    client, session, hooked, monkeypatch
):
    from worker.celery_app import celery_app
    from worker.tasks import idp_events as tasks

    def broker_down(*_args, **_kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    body, headers = signed(hooked.signing_secret, {"type": "user.deactivated"})
    response = client.post(hooked.events_url, data=body, headers=headers)

    assert response.status_code == 202  # stored durably: the sender must not retry
    assert session.scalars(select(ReceivedDelivery.status)).one() == "received"
    session.rollback()

    sent = record_sent_tasks(monkeypatch)
    assert tasks.wake_waiting_drains() == 0  # too recent: its wake-up may still be on its way
    later = datetime.now(UTC) + tasks.WAITING_TOO_LONG + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        assert tasks.wake_waiting_drains() == 1
    assert sent == [("events.drain", {"organisation_id": str(hooked.org.id)})]


def test_a_lost_wake_up_never_keeps_the_sweep_from_waking_its_drain():
    """A wake-up task lost with its worker leaves its flag up until it expires; by the time
    the sweep finds a delivery that waited too long, any flag raised before it has expired."""
    from worker import wakeups
    from worker.tasks import idp_events as tasks

    assert tasks.WAITING_TOO_LONG.total_seconds() >= wakeups.FLAG_TTL_SECONDS


def test_deliveries_wake_one_drain_while_a_wake_up_waits_to_be_taken(
    client, session, hooked, monkeypatch, settings
):
    from worker import wakeups

    sent = record_sent_tasks(monkeypatch)
    for n in range(3):
        body, headers = signed(hooked.signing_secret, {"id": f"e{n}", "type": "user.deactivated"})
        assert client.post(hooked.events_url, data=body, headers=headers).status_code == 202
    drain = ("events.drain", {"organisation_id": str(hooked.org.id)})
    if settings.celery_broker_url.startswith("redis://"):
        assert sent == [drain]  # the flag coalesced the other two
        wakeups.taken(*drain)  # the drain starts: what arrives next wakes it again
        body, headers = signed(hooked.signing_secret, {"id": "e4", "type": "user.deactivated"})
        assert client.post(hooked.events_url, data=body, headers=headers).status_code == 202
        assert sent == [drain, drain]
        wakeups.taken(*drain)
    else:
        assert sent == [drain] * 3  # no flags on this broker: every delivery wakes it
    assert session.scalar(select(func.count(OutboxMessage.id))) == 0  # no second write


def test_with_the_flags_unreachable_every_delivery_still_wakes_the_drain(
    client, hooked, monkeypatch
):
    from tests.support.net import refused_port
    from worker import wakeups

    with refused_port() as down:
        # The product's own flags client, on a port nobody listens on.
        monkeypatch.setattr(wakeups, "_broker_url", lambda: f"redis://127.0.0.1:{down}/0")
        sent = record_sent_tasks(monkeypatch)
        for n in range(2):
            body, headers = signed(
                hooked.signing_secret, {"id": f"e{n}", "type": "user.deactivated"}
            )
            assert client.post(hooked.events_url, data=body, headers=headers).status_code == 202

        drain = ("events.drain", {"organisation_id": str(hooked.org.id)})
        assert sent == [drain, drain]  # not coalesced, never dropped
        wakeups.taken(*drain)  # the drain starts: lowering an unreachable flag does not fail it


def record_sent_tasks(monkeypatch) -> list[tuple[str, dict]]:
    from worker.celery_app import celery_app

    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, **kw: sent.append((name, kw["kwargs"]))
    )
    return sent


def test_a_database_failure_while_storing_is_a_problem_answer_and_the_sender_retries(
    client, session, hooked, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    from models.actions import idp_events

    def database_gone(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(idp_events, "accept_deliveries", database_gone)
    url = hooked.events_url
    body, headers = signed(hooked.signing_secret, {"id": "e1", "type": "user.deactivated"})
    response = client.post(url, data=body, headers=headers)

    assert response.status_code == 503  # not 2xx: the sender keeps the delivery and retries
    assert response.headers["Retry-After"] == "1"
    assert response.content_type == "application/problem+json"
    assert "Traceback" not in response.get_data(as_text=True)
    assert stored(session) == 0
    monkeypatch.undo()
    assert client.post(url, data=body, headers=headers).status_code == 202


def test_a_timestamp_that_is_not_a_finite_number_is_stale_timestamp(client, session, hooked):
    """ "nan" passed the tolerance check (every comparison with NaN is false) and was then
    refused as a bad signature, although the signature was right: the timestamp is the fault."""
    for value in ("nan", "NaN", "-nan", "inf", "-Infinity"):
        body, headers = signed(hooked.signing_secret, {"type": "user.deactivated"})
        response = client.post(
            hooked.events_url, data=body, headers={**headers, "webhook-timestamp": value}
        )
        assert response.status_code == 401, value
        assert response.json["title"] == "stale_timestamp", (value, response.json)
        assert "not a number" in response.json["detail"]
    assert stored(session) == 0
