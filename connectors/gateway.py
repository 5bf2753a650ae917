"""Odock's gateway: tell it to forget cached keys so a revoked key stops working now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from connectors.outbound import UrlPolicy, pinned_session


class GatewayUnavailable(Exception):
    """The gateway did not acknowledge; the call is safe to repeat."""


def invalidate_keys(
    *, base_url: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> None:
    _post(base_url, "/v1/internal/cache/invalidate", secret, key_ids, timeout, policy)


@dataclass(frozen=True)
class KeyStatus:
    """Whether the gateway would accept a key now, as it said at `checked_at`."""

    key_id: str
    accepted: bool
    checked_at: datetime


def key_status(
    *, base_url: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> list[KeyStatus]:
    response = _post(base_url, "/v1/internal/keys/status", secret, key_ids, timeout, policy)
    try:
        return [
            KeyStatus(str(item["id"]), bool(item["accepted"]), _moment(item["checked_at"]))
            for item in response.json()["keys"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise GatewayUnavailable("gateway answered an unreadable key status") from exc


def _post(
    base_url: str, path: str, secret: str, key_ids: list[str], timeout: float, policy: UrlPolicy
) -> requests.Response:
    """POST the key ids to one of the gateway's internal endpoints; its answer if it is 2xx."""
    try:
        with pinned_session(policy) as http:
            response = http.post(
                base_url.rstrip("/") + path,
                json={"key_ids": key_ids},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=timeout,
                allow_redirects=False,
            )
    except requests.RequestException as exc:
        raise GatewayUnavailable(f"gateway unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 300:
        raise GatewayUnavailable(f"gateway answered {response.status_code}")
    return response


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
