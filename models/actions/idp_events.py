"""Applying IdP push events (Okta Event Hooks, signed generic events) to Odock users.

The receiver stores each delivery once and wakes a drain task, which applies the
organisation's received deliveries in the order they arrived, a batch per transaction. Every
event goes through the same shared operations as SCIM and the admin API (set_active,
edit_user, add_to_team...). Events are applied in the provider's order: per user, source and
aspect (status, profile, one team) the newest applied `published` time is kept, and an older
event arriving late is recorded as stale instead of undoing a newer one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, select, tuple_
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from connectors import generic_events, okta_hooks
from connectors.idp_events import Action, IdpEvent, Subject
from connectors.name_keys import name_key
from models import audit, membership_locks, outbox
from models.actions import access_end, lifecycle, mass_change, odock_events
from models.actions.deliveries import Incoming, Recorded, record_delivery, store_deliveries
from models.actions.event_lookups import EventLookups, link_sources
from models.actions.identities import find_link, link_identity, mark_link_deleted
from models.actions.lifecycle import Outcome, set_active
from models.actions.mass_change import GateRequest
from models.actions.teams import add_to_team, find_team_by_name, get_membership, remove_from_team
from models.actions.users import edit_user, find_user_by_email
from models.actor import Actor
from models.arrival import arrived
from models.base import utcnow
from models.entities import (
    EventCursor,
    IdentityLink,
    Organisation,
    ReceivedDelivery,
    Team,
    User,
)
from models.enums import ChangeKind, Source, TeamRole, UserStatus
from models.errors import DomainError

log = structlog.get_logger(__name__)

TASK_DRAIN = "events.drain"
DRAIN_BATCH = 20  # a batch commits (and its revocations reach the gateway) as one
CHANNEL_OKTA = "okta"
CHANNEL_EVENTS = "events"
SOURCES = {CHANNEL_OKTA: Source.OKTA, CHANNEL_EVENTS: Source.EVENTS}

RECEIVED, PROCESSED, REJECTED, FAILED = "received", "processed", "rejected", "failed"
STATUSES = (RECEIVED, PROCESSED, REJECTED, FAILED)
APPLIED, UNCHANGED, IGNORED, STALE, INVALID = "applied", "unchanged", "ignored", "stale", "rejected"
REFUSED_DETAIL = (
    "reactivation refused (audited): revoked by another source, which only that source or an "
    "admin undoes, or a key the revocation disabled was used after it"
)
HELD_DETAIL = "held by the mass-change gate until an admin approves or discards it"
DETAILS = {Outcome.REFUSED: REFUSED_DETAIL, Outcome.HELD: HELD_DETAIL}


def accept_delivery(
    session: Session, *, organisation_id: Any, channel: str, delivery_id: str, payload: Any
) -> Recorded:
    """Store a verified delivery once and wake the organisation's drain after commit; the
    stored delivery comes back as an object (the receiver itself uses accept_deliveries)."""
    recorded = record_delivery(
        session,
        organisation_id=organisation_id,
        channel=channel,
        delivery_id=delivery_id,
        payload=payload,
    )
    if recorded.is_new:
        _wake_drain(session, organisation_id)
    return recorded


@dataclass(frozen=True)
class Accepted:
    new: list[bool]  # for each delivery: False for a replay, answered without storing again
    drains_to_wake: list[uuid.UUID]  # organisations with new deliveries, once committed


def accept_deliveries(connection: Connection, incoming: list[Incoming]) -> Accepted:
    """Store verified deliveries in one statement. The caller commits, then wakes the drains
    (no session here: this is the receiver's hot path, see webhooks.idp_hooks)."""
    new = store_deliveries(connection, incoming)
    stored = {item.organisation_id for item, is_new in zip(incoming, new, strict=True) if is_new}
    return Accepted(new, sorted(stored))


def _wake_drain(session: Session, organisation_id: uuid.UUID) -> None:
    outbox.wake_after_commit(session, TASK_DRAIN, organisation_id=str(organisation_id))


def reprocess_delivery(session: Session, *, delivery: ReceivedDelivery, actor: Actor) -> None:
    """Run a delivery's events again; events already applied are recognised, not re-applied."""
    before = {"status": delivery.status, "outcome": delivery.outcome}
    delivery.status = RECEIVED
    outbox.enqueue(session, TASK_DRAIN, organisation_id=str(delivery.organisation_id))
    audit.record_change(
        session,
        actor=actor,
        subject=delivery,
        action="event_delivery.reprocess_requested",
        target_type="event_delivery",
        before=before,
        after={"status": RECEIVED},
    )


def claim_received(
    session: Session, organisation_id: uuid.UUID, *, limit: int | None = None
) -> list[ReceivedDelivery]:
    """The oldest deliveries still to apply, locked until commit; another drain skips them."""
    query = (
        select(ReceivedDelivery)
        .where(
            ReceivedDelivery.organisation_id == organisation_id,
            ReceivedDelivery.status == RECEIVED,
        )
        .order_by(ReceivedDelivery.received_at, ReceivedDelivery.id)
        .limit(limit or DRAIN_BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def has_received(session: Session, organisation_id: uuid.UUID) -> bool:
    """Whether the organisation has deliveries still to apply."""
    waiting = select(ReceivedDelivery.id).where(
        ReceivedDelivery.organisation_id == organisation_id, ReceivedDelivery.status == RECEIVED
    )
    return session.scalar(waiting.limit(1)) is not None


def process_received(session: Session, deliveries: list[ReceivedDelivery]) -> None:
    """Apply a batch of deliveries; one that breaks is failed, not retried forever.

    First quickly: the whole batch in one savepoint, its writes flushed together. A refused
    event (a DomainError) may have half-applied its change by then, so the batch is rolled
    back and run again carefully, one savepoint per event, so that only the refused event is
    undone. Should a delivery raise, the batch is run one savepoint per delivery, so that only
    the broken one fails. A database error (a race, the server gone) is not the delivery's
    fault: it propagates and the batch is retried.
    """
    with _counted_ahead(session, deliveries) as restart:
        for careful in (False, True):
            restart()
            try:
                with session.begin_nested():
                    _process_all(session, deliveries, careful=careful)
                return
            except (IntegrityError, OperationalError):
                raise
            except _Refused:
                continue
            except Exception:
                break
        restart()
        for delivery in deliveries:
            _process_isolated(session, delivery)


@contextmanager
def _counted_ahead(
    session: Session, deliveries: list[ReceivedDelivery]
) -> Iterator[Callable[[], None]]:
    """The batch's revocations and deletions counted by the mass-change gate at once, in one
    short transaction per source instead of one per event (see mass_change.reserved)."""
    with ExitStack() as stack:
        restarts = [
            stack.enter_context(
                mass_change.reserved(
                    session, organisation_id=organisation_id, actor=_actor(source), wanted=wanted
                )
            )
            for (organisation_id, source), wanted in _destructive(session, deliveries).items()
        ]

        def restart_all() -> None:
            for restart in restarts:
                restart()

        yield restart_all


def _destructive(
    session: Session, deliveries: list[ReceivedDelivery]
) -> dict[tuple[uuid.UUID, Source], list[mass_change.Wanted]]:
    """The revocations and deletions the deliveries ask for, of people linked to the events'
    ids and not revoked yet, in order (others, found by email, are counted one by one)."""
    asked = [
        (delivery.organisation_id, SOURCES[delivery.channel], event)
        for delivery in deliveries
        if delivery.channel in SOURCES
        for event in _parse_quietly(delivery)
        if _gate_request(event) is not None and event.subject and event.subject.external_id
    ]
    users = _active_linked_users(session, asked)
    wanted: dict[tuple[uuid.UUID, Source], list[mass_change.Wanted]] = {}
    for organisation_id, source, event in asked:
        assert event.subject is not None and event.subject.external_id is not None
        linked = (
            users.get((organisation_id, s, event.subject.external_id)) for s in link_sources(source)
        )
        user_id = next((user_id for user_id in linked if user_id), None)
        request = _gate_request(event)
        if user_id is not None and request is not None:
            wanted.setdefault((organisation_id, source), []).append(
                mass_change.Wanted(user_id, request)
            )
    return wanted


def _active_linked_users(
    session: Session, asked: list[tuple[uuid.UUID, Source, IdpEvent]]
) -> dict[tuple[uuid.UUID, Source, str], uuid.UUID]:
    keys = {
        (organisation_id, link_source, event.subject.external_id)
        for organisation_id, source, event in asked
        if event.subject and event.subject.external_id
        for link_source in link_sources(source)
    }
    if not keys:
        return {}
    rows = session.execute(
        select(IdentityLink.organisation_id, IdentityLink.source, IdentityLink.external_id, User.id)
        .join(User, User.id == IdentityLink.user_id)
        .where(
            tuple_(IdentityLink.organisation_id, IdentityLink.source, IdentityLink.external_id).in_(
                list(keys)
            ),
            User.status.in_([UserStatus.ACTIVE, UserStatus.PENDING]),
        )
    )
    return {(org, source, external_id): user_id for org, source, external_id, user_id in rows}


def _parse_quietly(delivery: ReceivedDelivery) -> list[IdpEvent]:
    try:
        return [event for event in _parse(delivery) if _applicable(event)]
    except Exception:  # rejected, or failed alone, when the batch applies it
        return []


class _Refused(Exception):
    """An event was refused while applying a batch without a savepoint per event."""


def _process_isolated(session: Session, delivery: ReceivedDelivery) -> None:
    try:
        with session.begin_nested():
            process_delivery(session, delivery=delivery)
    except (IntegrityError, OperationalError):
        raise
    except Exception as exc:
        log.exception("idp_event.delivery_failed", delivery_id=str(delivery.id))
        _finish(delivery, FAILED, f"internal error ({type(exc).__name__})", [])


def process_delivery(session: Session, *, delivery: ReceivedDelivery) -> ReceivedDelivery:
    """Apply every event of a stored delivery and record each one's outcome."""
    _process_all(session, [delivery], careful=True)
    return delivery


def _process_all(session: Session, deliveries: list[ReceivedDelivery], *, careful: bool) -> None:
    """Apply deliveries of one organisation, with what their events refer to read up front."""
    for delivery in deliveries:
        if delivery.channel == odock_events.CHANNEL_ODOCK:
            _apply_odock_event(session, delivery)
    deliveries = [d for d in deliveries if d.channel != odock_events.CHANNEL_ODOCK]
    if not deliveries:
        return
    parsed = [(delivery, _parse_or_reject(delivery)) for delivery in deliveries]
    subjects = [
        (SOURCES[delivery.channel], event.subject)
        for delivery, events in parsed
        for event in events or []
        if event.subject is not None and _applicable(event)
    ]
    organisation = _organisation(session, deliveries[0].organisation_id)
    # The teams the events join or leave, locked before the people (models.membership_locks):
    # a SCIM group write holding one of them and locking a person of the batch (a role its
    # mapping grants) would otherwise wait for the batch while the batch waited for it.
    teams = _lock_teams_of(session, organisation.id, parsed)
    lookups = EventLookups.read(session, organisation.id, subjects)
    revoked = _linked_revocations(lookups, parsed)
    with lifecycle.revoking_many(session, revoked):
        for delivery, events in parsed:
            if events is not None:
                _apply_delivery(
                    session, organisation, lookups, teams, delivery, events, careful=careful
                )


def _linked_revocations(
    lookups: EventLookups, parsed: list[tuple[ReceivedDelivery, list[IdpEvent] | None]]
) -> set[uuid.UUID]:
    """The people linked to the batch's revocations and deletions (already read: no query)."""
    found = set()
    for delivery, events in parsed:
        for event in events or []:
            if _gate_request(event) is None or not event.subject or not event.subject.external_id:
                continue
            for link_source in link_sources(SOURCES[delivery.channel]):
                user_id = lookups.linked_user_id(link_source, event.subject.external_id)
                if user_id is not None:
                    found.add(user_id)
    return found


def _apply_odock_event(session: Session, delivery: ReceivedDelivery) -> None:
    """A change event from Odock (see models.actions.odock_events), in a savepoint of its own
    so that a refused one is undone alone."""
    try:
        with session.begin_nested():
            result = odock_events.apply_event(session, delivery.organisation_id, delivery.payload)
    except (ValueError, DomainError) as exc:
        _finish(delivery, REJECTED, getattr(exc, "message", None) or str(exc)[:500], [])
        return
    _finish(delivery, PROCESSED, f"1 {result['outcome']}", [result])


def _parse_or_reject(delivery: ReceivedDelivery) -> list[IdpEvent] | None:
    try:
        return _parse(delivery)
    except ValueError as exc:
        _finish(delivery, REJECTED, str(exc), [])
        return None


def _apply_delivery(
    session: Session,
    organisation: Organisation,
    lookups: EventLookups,
    teams: dict[TeamKey, Team | None],
    delivery: ReceivedDelivery,
    events: list[IdpEvent],
    *,
    careful: bool,
) -> None:
    source = SOURCES[delivery.channel]
    applying = _Applying(session, organisation, lookups, teams, source, _actor(source), careful)
    with arrived(delivery.received_at):
        results = [{**_describe(event), **applying.apply(event)} for event in events]
    counts = Counter(result["outcome"] for result in results)
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no events"
    _finish(delivery, PROCESSED, summary, results)


def waiting_organisations(session: Session, *, received_before: datetime) -> list[uuid.UUID]:
    """Organisations with deliveries received before this moment and still not applied."""
    return list(
        session.scalars(
            select(ReceivedDelivery.organisation_id)
            .where(
                ReceivedDelivery.status == RECEIVED,
                ReceivedDelivery.received_at < received_before,
            )
            .distinct()
        )
    )


def _organisation(session: Session, organisation_id: uuid.UUID) -> Organisation:
    # The identity map holds objects weakly: keep the organisation for the whole transaction
    # so a batch of its deliveries loads it once.
    kept: dict[uuid.UUID, Organisation] = session.info.setdefault("odock.organisations", {})
    if organisation_id not in kept:
        kept[organisation_id] = session.get_one(Organisation, organisation_id)
    return kept[organisation_id]


class _Applying:
    """Applies the events of one batch, with what the batch read up front."""

    def __init__(
        self,
        session: Session,
        organisation: Organisation,
        lookups: EventLookups,
        teams: dict[TeamKey, Team | None],
        source: Source,
        actor: Actor,
        careful: bool,
    ) -> None:
        self.session, self.organisation, self.lookups = session, organisation, lookups
        self.teams = teams
        self.source, self.actor, self.careful = source, actor, careful

    def apply(self, event: IdpEvent) -> dict[str, Any]:
        """Apply one event; the outcome says what happened and why.

        When not careful, a refused event raises _Refused: there is no savepoint of its own to
        undo a half-made change with, so the caller runs the batch again carefully.
        """
        if not _applicable(event):
            return _not_applicable(event)
        assert event.subject is not None and event.published is not None
        user_id = self.find_subject(event.subject)
        if user_id is None:
            return _outcome(IGNORED, "unknown user")
        user = self.lookups.user(user_id)
        aspect = _aspect(event)
        cursor = self.lookups.cursor(user, self.source, aspect)
        if cursor is not None and event.published < cursor.published_at:
            return _outcome(STALE, "a newer event was already applied", user)
        if cursor is not None and cursor.event_id == event.event_id:
            return _outcome(UNCHANGED, "already applied", user)
        context = _Context(
            self.session, self.organisation, user, event, self.source, self.actor, self.teams
        )
        try:
            with self.session.begin_nested() if self.careful else nullcontext():
                done = HANDLERS[event.action](context)
                if done is None:
                    return _outcome(IGNORED, "unknown team", user)
                self._advance(cursor, user, aspect, event)
        except DomainError as exc:
            if not self.careful:
                raise _Refused from exc
            return _outcome(INVALID, exc.message, user)
        return _outcome(done.value, DETAILS.get(done, ""), user)

    def find_subject(self, subject: Subject) -> uuid.UUID | None:
        """The user's id: by the source's identity link (Okta users also by their SCIM link),
        then by email, linking the user to the event's external id on the way."""
        if subject.external_id:
            for link_source in link_sources(self.source):
                user_id = self.lookups.linked_user_id(link_source, subject.external_id)
                if user_id is not None:
                    return user_id
        if not subject.email:
            return None
        user = find_user_by_email(self.session, self.organisation.id, subject.email)
        if user is None or not subject.external_id:
            return user.id if user else None
        if any(link.source is self.source for link in user.identity_links):
            return None  # this email belongs to someone with another id at the same source
        link_identity(
            self.session,
            user=user,
            source=self.source,
            external_id=subject.external_id,
            actor=self.actor,
        )
        self.lookups.remember_link(self.source, subject.external_id, user.id)
        return user.id

    def _advance(
        self, cursor: EventCursor | None, user: User, aspect: str, event: IdpEvent
    ) -> None:
        assert event.published is not None
        if cursor is None:
            cursor = EventCursor(
                organisation_id=user.organisation_id,
                user_id=user.id,
                source=self.source,
                aspect=aspect,
            )
            self.session.add(cursor)
            self.lookups.remember_cursor(cursor)
        cursor.published_at = event.published
        cursor.event_id = event.event_id[:255]


@dataclass(frozen=True)
class _Context:
    session: Session
    organisation: Organisation
    user: User
    event: IdpEvent
    source: Source
    actor: Actor
    teams: dict[TeamKey, Team | None]  # the teams the batch's events name, locked

    @property
    def reason(self) -> str:
        return f"{self.event.event_type} ({self.event.event_id})"


def _actor(source: Source) -> Actor:
    return Actor(source, f"{source.value} event hook")


def _gate_request(event: IdpEvent) -> GateRequest | None:
    """What the mass-change gate is asked for a destructive event (None: not destructive)."""
    reason = f"{event.event_type} ({event.event_id})"
    if event.action is Action.REVOKE:
        return GateRequest(ChangeKind.DEACTIVATE, reason=reason)
    if event.action is Action.DELETE:
        external_id = event.subject.external_id if event.subject else None
        return GateRequest(ChangeKind.DELETE, {"link_external_id": external_id}, reason=reason)
    return None


def _revoke(c: _Context) -> Outcome:
    return set_active(
        c.session,
        user=c.user,
        active=False,
        actor=c.actor,
        reason=c.reason,
        gate=_gate_request(c.event),
    )


def _reactivate(c: _Context) -> Outcome:
    gate = GateRequest(ChangeKind.DEACTIVATE, reason=c.reason)  # takes a held one back
    return set_active(
        c.session, user=c.user, active=True, actor=c.actor, reason=c.reason, gate=gate
    )


def _delete(c: _Context) -> Outcome:
    external_id = c.event.subject.external_id if c.event.subject else None
    outcome = _revoke(c)
    if outcome is Outcome.HELD:
        return outcome  # the link goes too once an admin approves
    link = find_link(c.session, c.organisation.id, c.source, external_id) if external_id else None
    if link is not None and link.deleted_at is None:
        mark_link_deleted(c.session, link=link, actor=c.actor)
        return Outcome.APPLIED
    return outcome


def _changed(changed: bool) -> Outcome:
    return Outcome.APPLIED if changed else Outcome.UNCHANGED


def _update_profile(c: _Context) -> Outcome:
    before = (c.user.name, c.user.email)
    edit_user(
        c.session,
        user=c.user,
        actor=c.actor,
        name=c.event.changes.get("name"),
        email=c.event.changes.get("email"),
    )
    return _changed((c.user.name, c.user.email) != before)


TeamKey = tuple[Source, str | None, str | None]  # the source, a team's external id and name
TEAM_ACTIONS = (Action.JOIN_TEAM, Action.LEAVE_TEAM)


def _team_key(source: Source, event: IdpEvent) -> TeamKey:
    return (source, event.team_external_id, event.team_name)


def _lock_teams_of(
    session: Session,
    organisation_id: uuid.UUID,
    parsed: list[tuple[ReceivedDelivery, list[IdpEvent] | None]],
) -> dict[TeamKey, Team | None]:
    """The teams the batch's events join or leave, found and locked (FOR KEY SHARE) before
    any person; None for a team unknown (or deleted before its lock). A team that appears
    later in the transaction is not looked for again: the batch then comes before it."""
    found: dict[TeamKey, Team | None] = {}
    for delivery, events in parsed:
        for event in events or []:
            if _applicable(event) and event.action in TEAM_ACTIONS:
                key = _team_key(SOURCES[delivery.channel], event)
                if key not in found:
                    found[key] = _find_team(session, organisation_id, key)
    wanted = {team.id for team in found.values() if team is not None}
    locked = membership_locks.lock_teams(session, wanted, organisation_id=organisation_id)
    return {key: team if team and team.id in locked else None for key, team in found.items()}


def _find_team(session: Session, organisation_id: uuid.UUID, key: TeamKey) -> Team | None:
    source, external_id, name = key
    if external_id:
        team = session.scalar(
            select(Team).where(
                Team.organisation_id == organisation_id,
                Team.external_source == source,
                Team.external_id == external_id,
            )
        )
        if team is not None:
            return team
    return find_team_by_name(session, organisation_id, name or "")


def _team(c: _Context) -> Team | None:
    return c.teams.get(_team_key(c.source, c.event))


def _join(c: _Context) -> Outcome | None:
    team = _team(c)
    if team is None:
        return None
    if get_membership(c.session, team, c.user) is not None:
        return Outcome.UNCHANGED  # never demote a team manager to member
    add_to_team(
        c.session, team=team, user=c.user, role=TeamRole.MEMBER, actor=c.actor, source=c.source
    )
    return Outcome.APPLIED


def _leave(c: _Context) -> Outcome | None:
    team = _team(c)
    if team is None:
        return None
    return _changed(remove_from_team(c.session, team=team, user=c.user, actor=c.actor))


def _set_access_end(c: _Context) -> Outcome:
    return _changed(
        access_end.set_access_end(
            c.session, user=c.user, ends_at=c.event.access_ends_at, actor=c.actor
        )
    )


HANDLERS: dict[Action, Callable[[_Context], Outcome | None]] = {
    Action.REVOKE: _revoke,
    Action.REACTIVATE: _reactivate,
    Action.DELETE: _delete,
    Action.UPDATE_PROFILE: _update_profile,
    Action.JOIN_TEAM: _join,
    Action.LEAVE_TEAM: _leave,
    Action.SET_ACCESS_END: _set_access_end,
}


def _applicable(event: IdpEvent) -> bool:
    return not event.invalid and event.action is not Action.IGNORE


def _not_applicable(event: IdpEvent) -> dict[str, Any]:
    if event.invalid:
        return _outcome(INVALID, event.invalid)
    return _outcome(IGNORED, "event type not handled")


def _parse(delivery: ReceivedDelivery) -> list[IdpEvent]:
    if delivery.channel == CHANNEL_OKTA:
        return okta_hooks.parse_events(delivery.payload)
    return generic_events.parse_events(delivery.payload, delivery_id=delivery.delivery_id)


def _aspect(event: IdpEvent) -> str:
    if event.action in (Action.JOIN_TEAM, Action.LEAVE_TEAM):
        team = event.team_external_id.lower() if event.team_external_id else None
        return f"team:{team or name_key((event.team_name or '').strip())}"[:255]
    if event.action is Action.SET_ACCESS_END:
        return "access_end"
    return "profile" if event.action is Action.UPDATE_PROFILE else "status"


def _describe(event: IdpEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.event_type,
        "published": event.published.isoformat() if event.published else None,
    }


def _outcome(outcome: str, detail: str, user: User | None = None) -> dict[str, Any]:
    return {"outcome": outcome, "detail": detail, "user_id": str(user.id) if user else None}


def _finish(
    delivery: ReceivedDelivery, status: str, outcome: str, results: list[dict[str, Any]]
) -> ReceivedDelivery:
    now = utcnow()
    delivery.attempts += 1  # here, with the outcome, so the row is written once
    delivery.status = status
    delivery.outcome = outcome
    delivery.results = results
    delivery.applied_count = sum(1 for result in results if result["outcome"] == APPLIED)
    delivery.processed_at = now
    delivery.lag_ms = int((now - delivery.received_at).total_seconds() * 1000)
    return delivery
