"""The shared input guard on the IdP receivers: each hostile value of issue 14 in a delivery
is a problem JSON 400 (RFC 9457), and no delivery is stored."""

from __future__ import annotations

import pytest

from tests.events import okta_payloads as okta
from tests.events.conftest import generic, okta_headers, signed
from tests.support.hostile import HOSTILE_VALUES, PLACEHOLDER, with_hostile

REASON = {"syntax": "invalid_json", "value": "invalid_payload"}


def assert_refused(response, case: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["title"] == REASON[HOSTILE_VALUES[case][1]]
    assert response.json["status"] == 400 and response.json["detail"]


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_hostile_okta_deliveries_are_refused(client, hooked, unchanged, case):
    target = okta.user_target("00u1qw1mqitPHM8AJ0g8", PLACEHOLDER)
    delivery = okta.delivery(okta.event("user.lifecycle.deactivate", [target]))
    unchanged()
    response = client.post(
        hooked.okta_url, data=with_hostile(delivery, case), headers=okta_headers()
    )
    assert_refused(response, case)
    unchanged()


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_hostile_signed_events_are_refused(client, hooked, unchanged, case):
    event = generic("user.deactivated", user={"id": "u-1", "email": PLACEHOLDER})
    body, headers = signed(hooked.signing_secret, with_hostile(event, case))
    unchanged()
    assert_refused(client.post(hooked.events_url, data=body, headers=headers), case)
    unchanged()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/hooks/okta/a%00b"),
        ("GET", "/hooks/okta/a%00b"),
        ("POST", "/hooks/events/%00"),
        ("POST", "/hooks/enrollment/%00"),
    ],
)
def test_a_nul_in_the_path_is_a_400_before_any_lookup(client, hooked, unchanged, method, path):
    """The slug reached the organisation lookup: PostgreSQL refuses NUL in text, a 500 there
    (found by tests/security/test_hostile_routes.py). The shared guard refuses it as it
    refuses a NUL in the query."""
    unchanged()
    response = client.open(path, method=method, data=b"{}", headers=okta_headers())
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == "path" and "NUL" in response.json["detail"]
    unchanged()


def test_a_signed_delivery_whose_id_carries_a_nul_is_a_400_and_not_stored(
    client, hooked, unchanged
):
    """RFC 9110 forbids NUL in a header's value; gunicorn refuses it, not every front does.
    Signed by the sender, such a webhook-id reached the INSERT of the delivery: a 500 on
    PostgreSQL, which refuses NUL in text. The shared guard refuses a NUL in any header as it
    refuses one in the path and the query."""
    event = generic("user.deactivated", user={"email": "ada@example.com"})
    body, headers = signed(hooked.signing_secret, event, msg_id="msg_\x00one")
    unchanged()
    response = client.post(hooked.events_url, data=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == "webhook-id" and "NUL" in response.json["detail"]
    unchanged()
