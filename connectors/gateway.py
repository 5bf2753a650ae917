"""Odock's gateway: tell it to forget cached keys so a revoked key stops working now."""

from __future__ import annotations

import requests


class GatewayUnavailable(Exception):
    """The gateway did not acknowledge; the call is safe to repeat."""


def invalidate_keys(*, base_url: str, secret: str, key_ids: list[str], timeout: float) -> None:
    url = base_url.rstrip("/") + "/v1/internal/cache/invalidate"
    try:
        response = requests.post(
            url,
            json={"key_ids": key_ids},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise GatewayUnavailable(f"gateway unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 300:
        raise GatewayUnavailable(f"gateway answered {response.status_code}")
