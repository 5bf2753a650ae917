"""The shared input guard, fuzzed (hypothesis) on both IdP receivers: raw JSON edge cases
never get a 5xx, every refusal is problem JSON (RFC 9457), and a refused delivery stores
nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.events import okta_payloads as okta
from tests.events.conftest import RECEIVER_TABLES, generic, okta_headers, signed
from tests.support.fuzz import FUZZ, hold_tasks, json_values, raw_bodies, with_fragment
from tests.support.hostile import HOSTILE_VALUES
from tests.support.state import database_state

NAMES = ["eventType", "events", "data", "target", "id", "type", "user", "email", "eventId"]


def okta_shaped(value: Any) -> dict[str, Any]:
    target = okta.user_target("00u1qw1mqitPHM8AJ0g8", "jane@example.com")
    return okta.delivery(okta.event("user.lifecycle.deactivate", [{**target, "fuzz": value}]))


documents = json_values(NAMES)
HOSTILE_FRAGMENTS = st.sampled_from([fragment for fragment, _ in HOSTILE_VALUES.values()])
SIGNED_EVENT = generic("user.deactivated", user={"id": "u-1", "email": "a@example.com"})
bodies = st.one_of(
    raw_bodies(documents),
    documents.map(lambda value: json.dumps(okta_shaped(value)).encode()),
    st.builds(with_fragment, st.just(okta_shaped(None)), HOSTILE_FRAGMENTS, st.integers(0, 800)),
    st.builds(with_fragment, st.just(SIGNED_EVENT), HOSTILE_FRAGMENTS, st.integers(0, 400)),
)


def assert_clean(response: Any, before: Any, sessions: Any) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json", text
        assert response.json["status"] == response.status_code and response.json["detail"], text
        assert database_state(sessions, RECEIVER_TABLES) == before, text


def is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(body=bodies, channel=st.sampled_from(["okta", "events"]))
def test_no_delivery_gets_a_server_error_and_a_refusal_stores_nothing(
    client, sessions, hooked, monkeypatch, body, channel
) -> None:
    hold_tasks(monkeypatch)
    before = database_state(sessions, RECEIVER_TABLES)
    if channel == "okta" or not is_utf8(body):  # the signing helper signs text only
        response = client.post(hooked.okta_url, data=body, headers=okta_headers())
    else:
        signed_body, headers = signed(hooked.signing_secret, body)
        response = client.post(hooked.events_url, data=signed_body, headers=headers)
    assert_clean(response, before, sessions)
