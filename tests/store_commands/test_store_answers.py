"""What the store answers, taken at its word and no further: a 2xx whose applied_at cannot be
stored is no acknowledgement (and stalls no other key of the round), a 429 with Retry-After
is left alone that long, and a cut-off with days of failed attempts behind it still backs off
and finishes once the store is back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlparse

import pytest
from sqlalchemy import update

from connectors import odock as odock_connector
from connectors.outbound import UrlPolicy
from models.entities import KeyCutoff
from tests.store_commands.conftest import bridged, deactivate, provision_key_holder
from tests.store_commands.test_end_to_end import ACCEPTED, REJECTED, command_of, cutoff_of
from tests.support.odock.adapter import push_keys
from tests.support.odock.management import Answer
from tests.support.reaper import wait_reaping
from tests.support.slow_proxy import slow_proxy
from tests.support.trickled_head import trickled_head
from tests.support.wait import wait_until

RETRY_MAX = 600.0


@pytest.fixture(scope="module")
def bridged_settings(settings, odock):
    # A cap well above the Retry-After the store asks for, so that it is what decides the wait.
    return bridged(
        settings,
        odock,
        cutoff_retry_max=RETRY_MAX,
        celery_queue=f"{settings.celery_queue}-store-answers",
    )


def failed_once(sessions, key_id):
    """The key's store cut-off once a failed attempt is recorded and its lease given back."""
    cutoff = cutoff_of(sessions, key_id)
    return cutoff if cutoff.last_error and cutoff.leased_until is None else None


def test_an_applied_at_without_a_zone_is_no_acknowledgement_and_stalls_no_other_key(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """It was taken for one and could not be stored: the round's answers were lost for every
    key in it, round after round, and the other key was never cut off."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    other_id, other_value = odock.store.create_key(
        holder.org.id, owner_user_id=holder.user_id, name="second key"
    )
    push_keys(bridged_client, holder.odock_token, odock, holder.org.id)
    assert odock.call(holder.key_value) == ACCEPTED and odock.call(other_value) == ACCEPTED
    naive = Answer(200, {"applied_at": "2026-12-05T10:00:00"}, apply=True)
    odock.store_faults.answers[str(holder.key_id)] = naive

    deactivate(bridged_client, holder)

    wait_reaping(lambda: odock.call(other_value) == REJECTED, what="the other key cut off")
    assert command_of(bridged_sessions, other_id).acknowledged_at is not None
    failed = wait_until(lambda: failed_once(bridged_sessions, holder.key_id), what="recorded")
    assert "readable applied_at" in failed.last_error
    assert command_of(bridged_sessions, holder.key_id).acknowledged_at is None
    assert odock.call(holder.key_value) == ACCEPTED  # the gateway waits for an acknowledgement

    odock.store_faults.heal()  # the same command again, answered with its first applied_at

    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, what="the key cut off")
    assert command_of(bridged_sessions, holder.key_id).applied_at.tzinfo is not None


def test_a_429_with_retry_after_leaves_the_store_alone_that_long_for_every_key_of_the_round(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """The answer was a failure like any other: the next attempt came after the backoff's
    0.1 s, and the keys the round had not reached were due again at once."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    other_id, _value = odock.store.create_key(
        holder.org.id, owner_user_id=holder.user_id, name="second key"
    )
    push_keys(bridged_client, holder.odock_token, odock, holder.org.id)
    slow_down = Answer(429, {"detail": "slow down"}, {"Retry-After": "120"})
    for key_id in (holder.key_id, other_id):
        odock.store_faults.answers[str(key_id)] = slow_down

    deactivate(bridged_client, holder)

    wait_until(lambda: odock.commands_seen.commands, what="the store's first answer")
    [seen] = odock.commands_seen.commands
    assert seen.status == 429
    first = uuid.UUID(seen.key_id)
    asked = wait_until(lambda: failed_once(bridged_sessions, first), what="the 429 recorded")
    assert "429" in asked.last_error
    attempted = command_of(bridged_sessions, first).last_attempt_at
    for key_id in (holder.key_id, other_id):
        cutoff = cutoff_of(bridged_sessions, key_id)
        assert cutoff.leased_until is None
        assert cutoff.next_attempt_at >= attempted + timedelta(seconds=119), key_id
    assert len(odock.commands_seen.arrived) == 1  # the untried key was not sent after it


def _revoke(organisation_id: uuid.UUID, key_id: uuid.UUID) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "type": "key.revoke",
        "organisation_id": str(organisation_id),
        "key_id": str(key_id),
        "reason": "test",
        "issued_at": datetime.now(UTC).isoformat(),
    }


def _send_revoke(
    odock, organisation_id: uuid.UUID, key_id: uuid.UUID, *, via: str = "", timeout: float = 5
) -> None:
    """One revoke sent straight to the store (or through the proxy at `via`)."""
    path = urlparse(odock.management_url).path
    odock_connector.send_store_command(
        base_url=via + path if via else odock.management_url,
        token=odock.management_token,
        secret=odock.command_secret,
        body=_revoke(organisation_id, key_id),
        timeout=timeout,
        policy=UrlPolicy(allow_loopback=True),
    )


def test_retry_after_as_an_http_date_is_read_too(odock):
    """An HTTP date is the other form RFC 9110 allows."""
    organisation_id = uuid.uuid4()
    key_id, _value = odock.store.create_key(organisation_id)
    later = datetime.now(UTC) + timedelta(seconds=300)
    odock.store_faults.answers[str(key_id)] = Answer(
        503, {"detail": "maintenance"}, {"Retry-After": format_datetime(later, usegmt=True)}
    )
    with pytest.raises(odock_connector.StoreUnavailable) as raised:
        _send_revoke(odock, organisation_id, key_id)
    assert raised.value.retry_after is not None and 290 <= raised.value.retry_after <= 300


def test_a_2xx_answer_larger_than_an_acknowledgement_is_a_failed_attempt(odock):
    """It was read whole, whatever its size, before its applied_at was looked at."""
    organisation_id = uuid.uuid4()
    key_id, _value = odock.store.create_key(organisation_id)
    huge = {"applied_at": datetime.now(UTC).isoformat(), "padding": "x" * (4 * 1024 * 1024)}
    odock.store_faults.answers[str(key_id)] = Answer(200, huge)

    with pytest.raises(odock_connector.StoreUnavailable) as raised:
        _send_revoke(odock, organisation_id, key_id)
    assert "larger than" in str(raised.value)


def test_a_2xx_answer_trickled_past_the_timeout_is_a_failed_attempt(odock):
    """Each piece came within the read timeout: the store held the caller as long as it
    liked; the timeout now bounds the whole answer."""
    organisation_id = uuid.uuid4()
    key_id, _value = odock.store.create_key(organisation_id)
    padded = {"applied_at": datetime.now(UTC).isoformat(), "padding": "x" * 4000}
    odock.store_faults.answers[str(key_id)] = Answer(200, padded)

    # 16 bytes every 0.02 s: the head (a few hundred bytes) well within the timeout (which
    # bounds it too), the body some 5 s.
    with (
        slow_proxy(odock.management_url, delay=0.02, piece=16, scheme="http") as proxied,
        pytest.raises(odock_connector.StoreUnavailable) as raised,
    ):
        _send_revoke(odock, organisation_id, key_id, via=proxied, timeout=1.0)
    assert "in time" in str(raised.value)


def test_a_2xx_answer_whose_headers_are_trickled_past_the_timeout_is_a_failed_attempt():
    """Only the body was bounded as a whole: a store (or a proxy before it) sending its status
    line and then its headers a byte at a time, each within the read timeout, held the caller
    until it finished them (here some 15 s, then a good acknowledgement, taken). The timeout
    now bounds the whole exchange: the attempt fails, and the store sees it hang up."""
    acknowledgement = {"applied_at": datetime.now(UTC).isoformat()}
    with (
        trickled_head(json.dumps(acknowledgement).encode(), seconds=15.0) as store,
        pytest.raises(odock_connector.StoreUnavailable) as raised,
    ):
        try:
            odock_connector.send_store_command(
                base_url=store.url,
                token="token",
                secret="secret",
                body=_revoke(uuid.uuid4(), uuid.uuid4()),
                timeout=2.0,
                policy=UrlPolicy(allow_loopback=True),
            )
        finally:
            assert store.hung_up.wait(10.0), "the caller did not hang up mid-headers"
    assert "NotAnsweredInTime" in str(raised.value)
    assert not store.answered.is_set()


def test_after_days_of_outage_a_failure_is_still_recorded_and_the_store_back_finishes_it(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """At the cap, about a thousand attempts make a few days; past that the backoff's 2**n no
    longer converted to a float: each re-drive crashed before recording the failure, and kept
    the key leased until its lease ran out."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.store_faults.fail = True
    deactivate(bridged_client, holder)
    wait_until(lambda: failed_once(bridged_sessions, holder.key_id), what="the first failure")
    with bridged_sessions() as fresh:  # the outage's history: thousands of attempts already
        fresh.execute(
            update(KeyCutoff)
            .where(KeyCutoff.key_id == holder.key_id, KeyCutoff.via_store.is_(True))
            .values(attempts=5000, last_error=None, next_attempt_at=datetime.now(UTC))
        )
        fresh.commit()

    again = wait_reaping(
        lambda: (c := failed_once(bridged_sessions, holder.key_id)) and c.attempts > 5000 and c,
        what="the re-drive's failure recorded",
    )
    assert "500" in again.last_error
    assert again.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=RETRY_MAX)
    with bridged_sessions() as fresh:  # due now: the store is back
        fresh.execute(
            update(KeyCutoff)
            .where(KeyCutoff.key_id == holder.key_id)
            .values(next_attempt_at=datetime.now(UTC))
        )
        fresh.commit()

    odock.store_faults.heal()

    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, what="the key cut off")


def test_every_answer_the_document_lets_the_store_give_is_read_as_it_says(odock):
    """The document is what Odock's implementers build from: each status it lists for a
    command is read by the connector as its description says (2xx acknowledges, 404/410 end
    the command, anything else is a failed attempt, after any Retry-After it documents)."""
    from webhooks.odock_openapi import document

    answers = document()["x-management-plane"]["/v1/sync/commands"]["post"]["responses"]
    assert {"200", "404", "410", "409", "422", "429", "500", "503"} <= set(answers)
    organisation_id = uuid.uuid4()
    for status, documented in answers.items():
        key_id, _value = odock.store.create_key(organisation_id)
        headers = {"Retry-After": "7"} if "Retry-After" in documented.get("headers", {}) else {}
        body = {"applied_at": datetime.now(UTC).isoformat()} if status == "200" else {}
        odock.store_faults.answers[str(key_id)] = Answer(int(status), body, headers)
        if status == "200":
            _send_revoke(odock, organisation_id, key_id)
            continue
        ending = odock_connector.KeyUnknown if status in ("404", "410") else None
        with pytest.raises(ending or odock_connector.StoreUnavailable) as raised:
            _send_revoke(odock, organisation_id, key_id)
        if ending is None:
            assert raised.value.retry_after == (7.0 if headers else None), status
    assert {"429", "503"} <= {
        s for s, a in answers.items() if "Retry-After" in a.get("headers", {})
    }


def test_the_document_publishes_the_gateway_calls_odock_sync_makes():
    """Without them Odock's implementers would not know what the gateway must serve."""
    from webhooks.odock_openapi import document

    gateway = document()["x-gateway"]
    for path in ("/v1/internal/cache/invalidate", "/v1/internal/keys/status"):
        body = gateway[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/KeyIds"}
    status = gateway["/v1/internal/keys/status"]["post"]["responses"]["200"]
    item = status["content"]["application/json"]["schema"]["properties"]["keys"]["items"]
    assert set(item["required"]) == {"id", "accepted", "checked_at"}
