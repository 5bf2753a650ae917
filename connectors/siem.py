"""How a batch of audit events looks on the wire to a SIEM: NDJSON, or Splunk HEC events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

SPLUNK_SOURCETYPE = "odock:audit"


def ndjson_body(events: Sequence[dict[str, Any]]) -> bytes:
    """One JSON object per line, in order, each ending with a newline."""
    return "".join(_line(event) for event in events).encode()


def splunk_body(events: Sequence[dict[str, Any]], *, host: str = "odock-sync") -> bytes:
    """HTTP Event Collector batch: one envelope per event, newline-separated, event time kept."""
    envelopes = (
        {
            "time": datetime.fromisoformat(event["occurred_at"]).timestamp(),
            "host": host,
            "source": "odock-sync",
            "sourcetype": SPLUNK_SOURCETYPE,
            "event": event,
        }
        for event in events
    )
    return "".join(_line(envelope) for envelope in envelopes).encode()


def splunk_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Splunk {token}"}


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str) + "\n"
