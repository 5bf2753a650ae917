"""A signed generic event sets, moves or clears a person's end date (`user.access_end`);
an event without a usable date is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models.entities import AuditEvent
from models.enums import Source
from tests.events.conftest import generic
from tests.events.test_apply import T0, outcomes, process
from tests.support import factories as f

ENDS = datetime(2027, 1, 31, 17, tzinfo=UTC)


def _event(when: str | None, minute: int, **extra: object) -> dict:
    fields = {"access_ends_at": when} if "omit" not in extra else {}
    return generic(
        "user.access_end",
        user={"email": "pat@example.com"},
        occurred_at=(T0 + timedelta(minutes=minute)).isoformat(),
        **fields,
    )


def test_an_event_sets_moves_and_clears_the_end_date(session) -> None:
    org = f.make_org(session)
    person = f.make_user(session, org, email="pat@example.com")
    assert outcomes(process(session, org, _event("2027-01-31T17:00:00Z", 0), "events")) == [
        "applied"
    ]
    assert person.access_ends_at == ENDS and person.access_ends_source is Source.EVENTS
    later = "2027-02-28T17:00:00+00:00"
    assert outcomes(process(session, org, _event(later, 1), "events")) == ["applied"]
    # An older event arriving late changes nothing.
    assert outcomes(process(session, org, _event("2027-01-01T00:00:00Z", 0), "events")) == ["stale"]
    assert outcomes(process(session, org, _event(None, 2), "events")) == ["applied"]
    assert person.access_ends_at is None
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("user.access_end%"))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    assert actions == ["user.access_end_set", "user.access_end_changed", "user.access_end_cleared"]


def test_an_event_without_a_usable_date_is_refused(session) -> None:
    org = f.make_org(session)
    person = f.make_user(session, org, email="pat@example.com")
    for minute, event in enumerate(
        [
            _event(None, 0, omit=True),
            _event("2027-01-31T17:00:00", 1),
            _event("soon", 2),
            _event("1990-01-01T00:00:00Z", 3),
            _event("9999-12-31T23:59:59-12:00", 4),
        ]
    ):
        delivery = process(session, org, event, "events")
        # refused by the schema (rejected) or by the domain (invalid): either way, no change
        assert outcomes(delivery)[0] in ("rejected", "invalid"), (minute, delivery.results)
    assert person.access_ends_at is None
