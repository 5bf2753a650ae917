"""The gateway's answers to odock-sync's cut-off calls, through faults between them: the
stand-in gateway (a real HTTP server) behind a loopback proxy that trickles its answer or
resets the connection part-way through it. A call the gateway's answer did not reach whole, in
time, is a failed call (GatewayUnavailable: the cut-off is due again, with backoff), never an
acknowledgement and never a call that holds its worker past GATEWAY_TIMEOUT: the lease on the
cut-offs (GATEWAY_TIMEOUT + 2 s) is what keeps the reaper from calling again beside it."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from connectors import gateway
from connectors.outbound import UrlPolicy
from tests.support.odock import OdockStandIn
from tests.support.slow_proxy import slow_proxy
from tests.support.trickled_head import trickled_head

LOOPBACK = UrlPolicy(allow_loopback=True)
# The status of this many keys is some 4.5 KB: trickled 16 bytes every 0.05 s, it takes some
# 14 s, several times the call's timeout, while each piece comes well within it.
KEYS = 50
TIMEOUT = 2.0
PATIENT = 10.0  # a timeout that ends none of the calls here (a reset ends them)


@pytest.fixture(autouse=True)
def clean(stand_in: OdockStandIn) -> None:
    stand_in.reset()


def key_ids() -> list[str]:
    return [str(uuid.uuid4()) for _ in range(KEYS)]


def status(
    stand_in: OdockStandIn, via: str, keys: list[str], timeout: float = TIMEOUT
) -> list[gateway.KeyStatus]:
    return gateway.key_status(
        base_url=via,
        secret=stand_in.gateway_secret,
        key_ids=keys,
        timeout=timeout,
        policy=LOOPBACK,
    )


def invalidate(stand_in: OdockStandIn, via: str, keys: list[str], timeout: float = TIMEOUT) -> None:
    gateway.invalidate_keys(
        base_url=via,
        secret=stand_in.gateway_secret,
        key_ids=keys,
        timeout=timeout,
        policy=LOOPBACK,
    )


def test_through_the_proxy_answered_promptly_the_calls_go_through(stand_in):
    """The proxy itself loses nothing: the faults below are its delay and its reset."""
    keys = key_ids()
    with slow_proxy(stand_in.gateway_url, delay=0.0, scheme="http") as proxied:
        invalidate(stand_in, proxied, keys, timeout=PATIENT)
        statuses = status(stand_in, proxied, keys, timeout=PATIENT)
    assert [s.key_id for s in statuses] == keys
    assert stand_in.invalidations.effective_for(keys[0])


def test_a_key_status_trickled_past_the_timeout_is_a_failed_call(stand_in):
    """Each piece came within the read timeout: the gateway held the caller as long as it
    liked (past the lease on the cut-offs); the timeout now bounds the whole answer."""
    keys = key_ids()
    with (
        slow_proxy(stand_in.gateway_url, delay=0.05, piece=16, scheme="http") as proxied,
        pytest.raises(gateway.GatewayUnavailable) as raised,
    ):
        status(stand_in, proxied, keys)
    # Cut in the body ("not read whole in time") or, on a loaded machine, while its headers
    # were still coming (the watchdog's NotAnsweredInTime): either way the timeout bounded it.
    assert re.search("in time|NotAnsweredInTime", str(raised.value)), raised.value
    assert stand_in.invalidations.status_times_for(keys[0])  # it was asked, and answered


def test_an_invalidation_whose_answer_is_reset_mid_body_is_a_failed_call(stand_in):
    """The gateway may have forgotten the keys; odock-sync cannot know, so the call is due
    again (an invalidation is safe to repeat)."""
    keys = key_ids()
    with (
        # The body is {"invalidated":50}: cut after its first 5 bytes.
        slow_proxy(stand_in.gateway_url, delay=0.0, scheme="http", reset_after=5) as proxied,
        pytest.raises(gateway.GatewayUnavailable) as raised,
    ):
        invalidate(stand_in, proxied, keys, timeout=PATIENT)
    assert "unreachable" in str(raised.value)
    assert stand_in.invalidations.effective_for(keys[0])  # the gateway did answer 200


def test_a_key_status_reset_mid_body_is_a_failed_call(stand_in):
    keys = key_ids()
    with (
        # Half way through the body: the keys' statuses are some 90 bytes each.
        slow_proxy(
            stand_in.gateway_url, delay=0.0, scheme="http", reset_after=KEYS * 45
        ) as proxied,
        pytest.raises(gateway.GatewayUnavailable) as raised,
    ):
        status(stand_in, proxied, keys, timeout=PATIENT)
    assert "unreachable" in str(raised.value)


def test_a_key_status_whose_headers_are_trickled_past_the_timeout_is_a_failed_call(stand_in):
    """Only the body was bounded as a whole: a gateway (or a proxy before it) sending its status
    line and then its headers a byte at a time, each within the read timeout, held the caller
    until it finished them (here some 15 s, then a good answer, taken). The timeout now bounds
    the whole exchange: the call fails, and the gateway sees it hang up mid-headers."""
    keys = key_ids()
    answer = {
        "keys": [
            {"id": key, "accepted": False, "checked_at": "2026-12-06T05:00:00+00:00"}
            for key in keys
        ]
    }
    with (
        trickled_head(json.dumps(answer).encode(), seconds=15.0) as gateway_host,
        pytest.raises(gateway.GatewayUnavailable) as raised,
    ):
        try:
            status(stand_in, gateway_host.url, keys)
        finally:
            assert gateway_host.hung_up.wait(PATIENT), "the caller did not hang up mid-headers"
    assert "NotAnsweredInTime" in str(raised.value)
    assert not gateway_host.answered.is_set()


@pytest.mark.parametrize("accepted", [None, "false", "no", 0, 1, "true", {}], ids=repr)
def test_a_key_status_whose_accepted_is_not_a_boolean_is_a_failed_call(httpserver, accepted):
    """A 200 whose key status is not a JSON boolean (`null` for a key the gateway cannot say
    about, a string, a number) is no answer: the proof is asked again. Before, `null`, `0`
    and `""` read as false and were kept as a signed proof that the gateway denies the key,
    and "false" read as true (an alarm that the key is still accepted)."""
    key = str(uuid.uuid4())
    checked_at = "2026-12-06T10:00:00+00:00"
    httpserver.expect_request("/v1/internal/keys/status", method="POST").respond_with_json(
        {"keys": [{"id": key, "accepted": accepted, "checked_at": checked_at}]}
    )

    with pytest.raises(gateway.GatewayUnavailable, match="unreadable key status"):
        gateway.key_status(
            base_url=httpserver.url_for("/"),
            secret="s",
            key_ids=[key],
            timeout=PATIENT,
            policy=LOOPBACK,
        )


@pytest.mark.parametrize("accepted", [True, False])
def test_a_key_status_that_is_a_boolean_is_read_as_given(httpserver, accepted):
    key = str(uuid.uuid4())
    httpserver.expect_request("/v1/internal/keys/status", method="POST").respond_with_json(
        {"keys": [{"id": key, "accepted": accepted, "checked_at": "2026-12-06T10:00:00Z"}]}
    )

    (answer,) = gateway.key_status(
        base_url=httpserver.url_for("/"),
        secret="s",
        key_ids=[key],
        timeout=PATIENT,
        policy=LOOPBACK,
    )

    assert (answer.key_id, answer.accepted) == (key, accepted)
