"""Okta Event Hook deliveries shaped exactly like Okta's documented sample delivery
(developer.okta.com, "Event hooks": a com.okta.event_hook envelope whose data.events[] are
System Log events with uuid, published, eventType, actor, outcome, target[]...)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

DISPLAY = {
    "user.lifecycle.deactivate": ("Deactivate Okta user", "core.user.config.user_deactivated"),
    "user.lifecycle.suspend": ("Suspend Okta user", "core.user.config.user_suspended"),
    "user.lifecycle.unsuspend": ("Unsuspend Okta user", "core.user.config.user_unsuspended"),
    "user.lifecycle.activate": ("Activate Okta user", "core.user.config.user_activated"),
    "user.lifecycle.reactivate": ("Reactivate Okta user", "core.user.config.user_reactivated"),
    "user.lifecycle.delete.initiated": ("Delete Okta user", "core.user.config.user_deleted"),
    "user.account.update_profile": ("Update user profile for Okta", None),
    "group.user_membership.add": ("Add user to group membership", "core.user_group_member.add"),
    "group.user_membership.remove": (
        "Remove user from group membership",
        "core.user_group_member.remove",
    ),
}


def user_target(okta_id: str, email: str, name: str = "Jane Doe") -> dict[str, Any]:
    return {
        "id": okta_id,
        "type": "User",
        "alternateId": email,
        "displayName": name,
        "detailEntry": None,
    }


def group_target(group_id: str, name: str) -> dict[str, Any]:
    return {
        "id": group_id,
        "type": "UserGroup",
        "alternateId": "unknown",
        "displayName": name,
        "detailEntry": None,
    }


def event(
    event_type: str,
    targets: list[dict[str, Any]],
    *,
    published: datetime | None = None,
    event_uuid: str | None = None,
) -> dict[str, Any]:
    display, legacy = DISPLAY.get(event_type, (event_type, None))
    moment = published or datetime.now(UTC)
    return {
        "uuid": event_uuid or str(uuid.uuid1()),
        "published": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventType": event_type,
        "version": "0",
        "displayMessage": display,
        "severity": "INFO",
        "client": {
            "userAgent": {
                "rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_2) "
                "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/75.0.3770.100 Safari/537.36",
                "os": "Mac OS X",
                "browser": "CHROME",
            },
            "zone": "null",
            "device": "Computer",
            "id": None,
            "ipAddress": "127.0.0.1",
            "geographicalContext": {
                "city": "San Francisco",
                "state": "California",
                "country": "United States",
                "postalCode": "94105",
                "geolocation": {"lat": 37.7866, "lon": -122.3931},
            },
        },
        "device": None,
        "actor": {
            "id": "00u1qw1mqitPHM8AJ0g7",
            "type": "User",
            "alternateId": "admin@example.com",
            "displayName": "Joe Admin",
            "detailEntry": None,
        },
        "outcome": {"result": "SUCCESS", "reason": None},
        "target": targets,
        "transaction": {"type": "WEB", "id": "XRp2vNbaQ7bSp3dcPe8ihAAADFY", "detail": {}},
        "debugContext": {
            "debugData": {
                "requestId": "XRp2vNbaQ7bSp3dcPe8ihAAADFY",
                "requestUri": "/api/v1/users/00u1qw1mqitPHM8AJ0g8/lifecycle/deactivate",
                "url": "/api/v1/users/00u1qw1mqitPHM8AJ0g8/lifecycle/deactivate?",
            }
        },
        "legacyEventType": legacy,
        "authenticationContext": {
            "authenticationProvider": None,
            "credentialProvider": None,
            "credentialType": None,
            "issuer": None,
            "authenticationStep": 0,
            "externalSessionId": "102bZDNFfWaQSyEZQuDgWt-uQ",
            "interface": None,
        },
        "securityContext": {
            "asNumber": None,
            "asOrg": None,
            "isp": None,
            "domain": None,
            "isProxy": None,
        },
        "insecure": False,
    }


def delivery(*events: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://dev-123456.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3",
        "eventId": event_id or str(uuid.uuid4()),
        "data": {"events": list(events)},
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "contentType": "application/json",
    }
