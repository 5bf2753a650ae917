"""What a notification looks like on each channel: signed webhook JSON, Slack, email."""

from __future__ import annotations

import json
from typing import Any

from connectors.email import Email

TITLES = {
    "review.opened": "Revocation review opened",
    "review.resolved": "Revocation review resolved",
    "review.escalated": "Revocation review needs attention",
    "finding.urgent": "URGENT: a revoked user's key is still in use",
    "hook.disabled": "A notification hook was disabled",
    "mass_change.held": "Mass change held: destructive changes wait for an admin",
    "source.silent": "A directory source has gone quiet",
    "source.recovered": "A directory source is alive again",
    "access.departure_notice": "Access ends soon",
}


def title_of(event: str, payload: dict[str, Any]) -> str:
    title = TITLES.get(event, event.replace(".", " ").replace("_", " ").capitalize())
    user = payload.get("user") or {}
    return f"{title}: {user['email']}" if isinstance(user, dict) and user.get("email") else title


def webhook_body(*, event_id: str, event: str, timestamp: str, payload: dict[str, Any]) -> bytes:
    """The Standard Webhooks shape: type, timestamp, data."""
    body = {"id": event_id, "type": event, "timestamp": timestamp, "data": payload}
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters escaped: a name someone chose can then neither
    mention (`<!channel>`) nor link (`<https://…|innocent text>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(*, event: str, payload: dict[str, Any], ack_url: str | None) -> bytes:
    """An incoming-webhook message: a text fallback and a few blocks. Everything that is
    read as mrkdwn (the fallback text, the section) is escaped."""
    title = title_of(event, payload)
    lines = [mrkdwn_escape(line) for line in summary_lines(payload)]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
    ]
    if lines:
        text = "\n".join(f"• {line}" for line in lines)[:2900]
        # verbatim: Slack's automatic parsing would link a URL, a #channel or an @here that
        # a name holds; the escaped mrkdwn is then read as written.
        section = {"type": "mrkdwn", "text": text, "verbatim": True}
        blocks.append({"type": "section", "text": section})
    if ack_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "url": ack_url,
                    }
                ],
            }
        )
    message = {"text": mrkdwn_escape(title), "blocks": blocks}
    return json.dumps(message, separators=(",", ":")).encode()


def email_message(
    *, to: str, event: str, payload: dict[str, Any], ack_url: str | None, message_id: str
) -> Email:
    title = title_of(event, payload)
    lines = summary_lines(payload)
    text = title + "\n\n" + "\n".join(f"- {line}" for line in lines)
    if payload.get("review_url"):
        text += f"\n\nReview: {payload['review_url']}"
    if ack_url:
        text += f"\n\nAcknowledge (stops reminders): {ack_url}"
    return Email(to=to, subject=f"[odock-sync] {title}", text=text + "\n", message_id=message_id)


def summary_lines(payload: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if payload.get("message"):
        lines.append(str(payload["message"]))
    for finding in payload.get("findings", [])[:50]:
        lines.append(
            f"[{finding.get('severity')}] {finding.get('kind')} {finding.get('subject_name', '')}"
            f": {finding.get('action')}"
            + (" (done)" if finding.get("action_taken") else " (proposed)")
        )
    more = len(payload.get("findings", [])) - 50
    if more > 0:
        lines.append(f"... and {more} more")
    return lines + preview_lines(payload.get("preview") or {})


def preview_lines(preview: dict[str, Any]) -> list[str]:
    """A blast-radius preview (what a revocation would do) as one line per thing touched."""
    lines = [
        f"{key.get('action')}: {label} {key.get('name')} ({key.get('masked_value')})"
        for group, label in (("keys", "key"), ("team_keys", "team key"), ("org_keys", "org key"))
        for key in preview.get(group, [])[:50]
    ]
    lines += [f"needs a new owner: budget {b.get('name')}" for b in preview.get("budgets", [])]
    lines += [f"needs a new owner: quota {q.get('name')}" for q in preview.get("quotas", [])]
    return lines
