"""The adapter beside Odock, as far as tests need it: read the stand-in's listing and push
every object to odock-sync's /odock/v1 (what a push from the management plane does)."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from tests.support.odock import OdockStandIn


def listed_keys(odock: OdockStandIn, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = requests.get(
            odock.management_url + "/v1/sync/keys",
            params={"organisation_id": str(organisation_id), "cursor": cursor, "limit": 100},
            headers={"Authorization": f"Bearer {odock.management_token}"},
            timeout=5,
        )
        page.raise_for_status()
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def push_keys(client: Any, token: str, odock: OdockStandIn, organisation_id: uuid.UUID) -> None:
    """PUT each key the stand-in lists to odock-sync (a Flask test client or compatible)."""
    for item in listed_keys(odock, organisation_id):
        key_id = item.pop("id")
        response = client.put(
            f"/odock/v1/keys/{key_id}", json=item, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.get_json()
