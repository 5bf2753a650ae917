"""The stand-in Odock keeps the contract: signed commands applied once, paged listings, and a
gateway that authenticates from Redis and fails closed without it."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
import requests

from connectors.odock import StoreUnavailable, send_store_command
from connectors.outbound import UrlPolicy
from connectors.signed_webhooks import new_signing_secret, sign

ACCEPTED, REJECTED = 200, 401


def revoke_body(key_id: uuid.UUID) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "key.revoke",
        "organisation_id": str(uuid.uuid4()),
        "key_id": str(key_id),
        "reason": "test",
        "issued_at": "2026-12-04T10:00:00+00:00",
        "owner_user_id": None,
        "owner_team_id": None,
    }


def send(odock, body, secret=None):
    return send_store_command(
        base_url=odock.management_url,
        token=odock.management_token,
        secret=secret or odock.command_secret,
        body=body,
        timeout=5,
        policy=UrlPolicy(allow_loopback=True),
    )


def test_a_repeated_command_is_applied_once_and_answered_with_its_first_time(odock):
    key_id, value = odock.store.create_key(uuid.uuid4(), owner_user_id=uuid.uuid4())
    body = revoke_body(key_id)

    first, again = send(odock, body), send(odock, body)

    assert first == again
    assert odock.store.key(key_id)["revoked"] is True
    assert odock.call(value) == REJECTED


def test_an_unsigned_or_wrongly_signed_command_is_refused_and_changes_nothing(odock):
    key_id, value = odock.store.create_key(uuid.uuid4(), owner_user_id=uuid.uuid4())
    body = revoke_body(key_id)
    raw = json.dumps(body).encode()
    url = odock.management_url + "/v1/sync/commands"

    unsigned = requests.post(url, data=raw, timeout=5)
    other_id = requests.post(
        url, data=raw, headers=sign(odock.command_secret, msg_id="other", body=raw), timeout=5
    )

    assert unsigned.status_code == 401
    assert unsigned.headers["Content-Type"] == "application/problem+json"
    assert other_id.status_code == 422
    try:
        send(odock, body, secret=new_signing_secret())
    except StoreUnavailable as exc:
        assert "401" in str(exc)
    else:
        raise AssertionError("a command signed with another secret was accepted")
    assert odock.store.key(key_id)["revoked"] is False
    assert odock.call(value) == ACCEPTED
    broken = odock.contract.take()  # the stand-in saw these break the document, as meant
    assert "POST /v1/sync/commands: the header webhook-signature is missing" in broken


def test_a_command_the_document_does_not_allow_is_noted_and_fails_the_test(odock):
    """The stand-in checks each request against webhooks/odock_openapi.py; what breaks it is
    kept, and the suite's fixture fails the test that sent it (as it would odock-sync's)."""
    key_id, _value = odock.store.create_key(uuid.uuid4(), owner_user_id=uuid.uuid4())
    body = {**revoke_body(key_id), "type": "key.explode"}
    del body["issued_at"]

    with contextlib.suppress(StoreUnavailable):
        send(odock, body)

    broken = odock.contract.take()
    assert broken and all(line.startswith("POST /v1/sync/commands: ") for line in broken)
    assert any("issued_at" in line for line in broken), broken
    gateway = requests.post(
        odock.gateway_url + "/v1/internal/cache/invalidate",
        json={"keys": [str(key_id)]},
        headers={"Authorization": f"Bearer {odock.gateway_secret}"},
        timeout=5,
    )
    assert gateway.status_code == 200
    assert (
        "POST /v1/internal/cache/invalidate: (body): 'key_ids' is a required property"
        in odock.contract.take()
    )


def test_listings_are_paged_and_need_the_management_token(odock):
    organisation = uuid.uuid4()
    made = {str(odock.store.create_key(organisation)[0]) for _ in range(5)}
    odock.store.create_key(uuid.uuid4())  # another organisation's
    url = odock.management_url + "/v1/sync/keys"
    auth = {"Authorization": f"Bearer {odock.management_token}"}

    listed, cursor, pages = [], None, 0
    while True:
        params = {"organisation_id": str(organisation), "limit": "2"}
        page = requests.get(url, params={**params, "cursor": cursor or ""}, headers=auth, timeout=5)
        assert page.status_code == 200
        listed += page.json()["items"]
        cursor, pages = page.json()["next_cursor"], pages + 1
        if cursor is None:
            break

    assert pages == 3 and {item["id"] for item in listed} == made
    assert {"type", "masked_value", "revoked", "version"} <= set(listed[0])
    assert (
        requests.get(url, params={"organisation_id": str(organisation)}, timeout=5).status_code
        == 401
    )
    bad = requests.get(url, params={"organisation_id": "nope"}, headers=auth, timeout=5)
    assert bad.status_code == 400


def test_the_gateway_fails_closed_while_its_redis_is_down_and_recovers(odock):
    key_id, value = odock.store.create_key(uuid.uuid4(), owner_user_id=uuid.uuid4())
    assert odock.call(value) == ACCEPTED
    assert odock.call("sk-never-issued") == REJECTED

    odock.redis.kill()
    try:
        assert odock.call(value) == 503
    finally:
        odock.redis.start()

    assert odock.call(value) == ACCEPTED
    status = requests.post(
        odock.gateway_url + "/v1/internal/keys/status",
        json={"key_ids": [str(key_id)]},
        headers={"Authorization": f"Bearer {odock.gateway_secret}"},
        timeout=5,
    ).json()
    assert status["keys"][0]["id"] == str(key_id) and status["keys"][0]["accepted"] is True


def test_listing_pages_are_what_the_document_says_odock_serves(odock):
    """Each item carries its id beside the object's fields; the document allowed no id."""
    from tests.support.odock.contract import violations
    from tests.support.odock.store import budgets, quotas
    from webhooks.odock_openapi import document

    organisation = uuid.uuid4()
    odock.store.create_key(organisation, owner_user_id=uuid.uuid4())
    odock.store.create_key(organisation)
    owned = {"owner_type": "ORG", "name": "org", "version": 1}
    odock.store.put_owned(budgets, organisation, {**owned, "amount": "10", "currency": "USD"})
    odock.store.put_owned(quotas, organisation, {**owned, "limit": 7, "metric": "tokens"})
    listings = document()["x-management-plane"]
    for kind in ("keys", "budgets", "quotas"):
        page = requests.get(
            f"{odock.management_url}/v1/sync/{kind}",
            params={"organisation_id": str(organisation)},
            headers={"Authorization": f"Bearer {odock.management_token}"},
            timeout=5,
        )
        answer = listings[f"/v1/sync/{kind}"]["get"]["responses"][str(page.status_code)]
        schema = answer["content"]["application/json"]["schema"]
        assert page.json()["items"], kind
        assert violations(schema, page.json()) == [], kind


def test_a_listing_refusal_is_an_answer_the_document_lists(odock):
    """A listing may fail in more ways than a missing token; Odock's side must know that any
    of them leaves the reconcile incomplete, deleting nothing."""
    from webhooks.odock_openapi import document

    bad = requests.get(
        odock.management_url + "/v1/sync/keys",
        params={"organisation_id": "nope"},
        headers={"Authorization": f"Bearer {odock.management_token}"},
        timeout=5,
    )
    listing = document()["x-management-plane"]["/v1/sync/keys"]["get"]
    assert str(bad.status_code) in listing["responses"]
    assert {"400", "401", "429", "500", "503"} <= set(listing["responses"])
    assert "deletes nothing" in listing["description"]


def test_every_answer_the_document_lets_the_gateway_give_is_read_as_it_says(odock):
    """2xx is done (the status answer read as documented); 401 and 503 are failed attempts."""
    from connectors.gateway import GatewayUnavailable, invalidate_keys, key_status
    from webhooks.odock_openapi import document

    key_id, _value = odock.store.create_key(uuid.uuid4())
    policy = UrlPolicy(allow_loopback=True)
    calls = {
        "/v1/internal/cache/invalidate": invalidate_keys,
        "/v1/internal/keys/status": key_status,
    }
    for path, operation in document()["x-gateway"].items():
        assert set(operation["post"]["responses"]) == {"200", "401", "503"}, path
        call = calls[path]

        def send(secret: str, call=call):
            return call(
                base_url=odock.gateway_url,
                secret=secret,
                key_ids=[str(key_id)],
                timeout=5,
                policy=policy,
            )

        answer = send(odock.gateway_secret)
        if path.endswith("/status"):
            assert [(s.key_id, s.accepted) for s in answer] == [(str(key_id), True)]
        with pytest.raises(GatewayUnavailable, match="401"):
            send("not-the-secret")
        odock.gateway_faults.unavailable = odock.gateway_faults.status_unavailable = True
        with pytest.raises(GatewayUnavailable, match="503"):
            send(odock.gateway_secret)
        odock.gateway_faults.heal()
