"""The command line: a token of scope odock opens the push API, a secret signs events."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from connectors import signed_webhooks
from models.entities import ReceivedDelivery


def test_a_token_and_a_secret_from_the_cli_open_the_bridge(run, run_json, client, sessions):
    org = run_json("org", "create", "--name", "Acme")
    owner = run_json(
        "user", "create", "--org", org["slug"], "--email", "o@acme.test", "--name", "O"
    )
    token = run_json("token", "create", "--org", org["slug"], "--scope", "odock")["token"]
    secret = run_json("odock", "secret", "add", "--org", org["slug"])["secret"]
    listed = run_json("odock", "secret", "list", "--org", org["slug"])
    assert token.startswith("odk_odock") and len(listed) == 1
    assert secret not in json.dumps(listed)

    key_id = uuid.uuid4()
    body = json.dumps(
        {"type": "USER", "name": "k", "owner_user_id": owner["id"], "version": 1}
    ).encode()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert client.put(f"/odock/v1/keys/{key_id}", data=body, headers=auth).status_code == 200
    event = json.dumps({"type": "key.deleted", "id": str(key_id), "version": 2}).encode()
    signed = signed_webhooks.sign(secret, msg_id="msg_cli", body=event)
    assert (
        client.post("/odock/v1/events", data=event, headers={**auth, **signed}).status_code == 202
    )

    run("odock", "secret", "remove", "--org", org["slug"], listed[0]["id"])
    resent = signed_webhooks.sign(secret, msg_id="msg_cli_2", body=event)
    refused = client.post("/odock/v1/events", data=event, headers={**auth, **resent})
    assert refused.status_code == 404
    with sessions() as fresh:  # the signed event is stored once; the refused one is not
        stored = fresh.scalars(
            select(ReceivedDelivery.delivery_id).where(
                ReceivedDelivery.organisation_id == uuid.UUID(org["id"])
            )
        ).all()
    assert stored == ["msg_cli"]
