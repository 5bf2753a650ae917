"""Okta Event Hooks: the delivery format (data.events[] of System Log events) and the
one-time verification challenge."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from connectors.idp_events import Action, IdpEvent, Subject, parse_time

VERIFICATION_HEADER = "X-Okta-Verification-Challenge"

ACTIONS = {
    "user.lifecycle.deactivate": Action.REVOKE,
    "user.lifecycle.suspend": Action.REVOKE,
    "user.lifecycle.unsuspend": Action.REACTIVATE,
    "user.lifecycle.activate": Action.REACTIVATE,
    "user.lifecycle.reactivate": Action.REACTIVATE,
    "user.lifecycle.delete.initiated": Action.DELETE,
    "user.account.update_profile": Action.UPDATE_PROFILE,
    "group.user_membership.add": Action.JOIN_TEAM,
    "group.user_membership.remove": Action.LEAVE_TEAM,
}


class NotAnOktaDelivery(ValueError):
    """The JSON is not shaped like an Okta event hook delivery."""


def delivery_id(payload: Any) -> str:
    """Okta's eventId for the delivery; else a digest of the event uuids it carries."""
    events = raw_events(payload)
    event_id = payload.get("eventId")
    if isinstance(event_id, str) and 0 < len(event_id) <= 200:
        return event_id
    uuids = sorted(str(event.get("uuid", "")) for event in events)
    return "uuids:" + hashlib.sha256("\n".join(uuids).encode()).hexdigest()


def raw_events(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        raise NotAnOktaDelivery("the body must be a JSON object")
    data = payload.get("data")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise NotAnOktaDelivery("data.events must be a list of event objects")
    return events


def parse_events(payload: Any) -> list[IdpEvent]:
    return [parse_event(event, index) for index, event in enumerate(raw_events(payload))]


def parse_event(event: dict[str, Any], index: int = 0) -> IdpEvent:
    event_type = str(event.get("eventType") or "")
    event_id = str(event.get("uuid") or f"#{index}")
    action = ACTIONS.get(event_type, Action.IGNORE)
    published = parse_time(event.get("published"))
    targets = _objects(event.get("target"))
    user = next((t for t in targets if t.get("type") == "User"), None)
    group = next((t for t in targets if t.get("type") == "UserGroup"), None)
    base = IdpEvent(event_id=event_id, event_type=event_type, action=action, published=published)
    if action is Action.IGNORE:
        return base
    if published is None:
        return replace(base, invalid="published is missing or not a timestamp")
    if user is None or not (user.get("id") or user.get("alternateId")):
        return replace(base, invalid="no target of type User")
    subject = Subject(
        external_id=_text(user.get("id")),
        email=_email(user.get("alternateId")),
        name=_text(user.get("displayName")),
    )
    if action in (Action.JOIN_TEAM, Action.LEAVE_TEAM):
        if group is None or not group.get("displayName"):
            return replace(base, invalid="no target of type UserGroup")
        return replace(
            base,
            subject=subject,
            team_name=_text(group.get("displayName")),
            team_external_id=_text(group.get("id")),
        )
    changes = {}
    if action is Action.UPDATE_PROFILE:
        changes = {k: v for k, v in (("name", subject.name), ("email", subject.email)) if v}
    return replace(base, subject=subject, changes=changes)


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list; nothing when `value` is not a list (a sender's `"target":
    true` must not fail the whole delivery)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _email(value: Any) -> str | None:
    text = _text(value)
    return text if text and "@" in text else None
