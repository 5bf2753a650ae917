"""The one backoff rule (models/backoff.py): doubling from the base up to the cap, and still
the cap after days of an outage, where 2**n no longer converted to a float."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.audit_stream_delivery import batch_refused
from models.backoff import backoff
from models.entities import AuditStream


def test_the_wait_doubles_from_the_base_up_to_the_cap() -> None:
    waits = [backoff(n, retry_base=5.0, retry_max=300.0) for n in range(0, 9)]
    assert waits == [5.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


@pytest.mark.parametrize("attempts", [1_000, 1_025, 1_100, 5_000, 10**6])
def test_after_days_of_failures_the_wait_is_the_cap(attempts: int) -> None:
    assert backoff(attempts, retry_base=30.0, retry_max=3600.0) == 3600.0


@pytest.mark.parametrize("failures", [5_000, 10**6])
def test_an_audit_stream_refused_at_a_huge_failure_count_waits_the_cap(failures: int) -> None:
    """A stream is never dropped: its failure count grows for as long as its receiver is down."""
    now = datetime(2026, 12, 5, tzinfo=UTC)
    stream = AuditStream(consecutive_failures=failures, first_failure_at=now)

    batch_refused(
        None,  # type: ignore[arg-type]  # the rule touches the stream only
        stream=stream,
        error="503 from the receiver",
        now=now,
        retry_base=5.0,
        retry_max=300.0,
    )

    assert stream.consecutive_failures == failures + 1
    assert stream.next_attempt_at == now + timedelta(seconds=300)
    assert stream.last_error == "503 from the receiver"
