"""A signed generic event sets, moves or clears a person's end date (`user.access_end`);
an event without a usable date is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models.actions import access_end, lifecycle
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, Organisation, User
from models.enums import Source, UserStatus
from tests.events.conftest import generic
from tests.events.test_apply import T0, outcomes, process
from tests.support import factories as f

ENDS = datetime(2027, 1, 31, 17, tzinfo=UTC)
SCHEDULE = Actor(Source.SCHEDULE, "access-end schedule")


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


def _ended_by_the_schedule(session, when: datetime) -> User:
    """A person whose end date, set by the IdP's events, passed: the schedule revoked them."""
    org = f.make_org(session)
    person = f.make_user(session, org, email="pat@example.com")
    assert outcomes(process(session, org, _event(_iso(when), 0), "events")) == ["applied"]
    assert access_end.end_access(session, user_id=person.id, now=utcnow(), actor=SCHEDULE) is (
        lifecycle.Outcome.APPLIED
    )
    return person


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _reactivated(minute: int) -> dict:
    return generic(
        "user.reactivated",
        user={"email": "pat@example.com"},
        occurred_at=(T0 + timedelta(minutes=minute)).isoformat(),
    )


def test_a_renewed_date_then_reactivated_brings_back_whom_the_schedule_revoked(session) -> None:
    """The events' renewed contract, in the order SCIM applies it (the date, then active):
    the source that set the passed date gives a later one and says active."""
    passed = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    person = _ended_by_the_schedule(session, passed)
    assert person.status is UserStatus.REVOKED
    renewed = (utcnow() + timedelta(days=90)).replace(microsecond=0)
    org = session.get_one(Organisation, person.organisation_id)

    batch = {"events": [_event(_iso(renewed), 1), _reactivated(2)]}
    delivery = process(session, org, batch, "events", delivery_id="renewal")

    assert outcomes(delivery) == ["applied", "applied"]
    assert person.status is UserStatus.ACTIVE and person.access_ends_at == renewed


def test_reactivated_before_the_renewed_date_waits_for_the_next_reactivated(session) -> None:
    """The other order: `user.reactivated` while the passed date still stands is refused (the
    schedule's revocation is not the events' to take back), the later date then is only a
    date; the IdP's next `user.reactivated` brings the person back."""
    passed = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    person = _ended_by_the_schedule(session, passed)
    renewed = (utcnow() + timedelta(days=90)).replace(microsecond=0)
    org = session.get_one(Organisation, person.organisation_id)

    batch = {"events": [_reactivated(1), _event(_iso(renewed), 2)]}
    delivery = process(session, org, batch, "events", delivery_id="renewal")
    assert outcomes(delivery) == ["refused", "applied"]
    assert person.status is UserStatus.REVOKED

    assert outcomes(process(session, org, _reactivated(3), "events")) == ["applied"]
    assert person.status is UserStatus.ACTIVE
