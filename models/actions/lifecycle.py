"""The user status lifecycle, one policy for every source (admin API, CLI, SCIM, LDAP, IdP
events, invitations): approve, decline, revoke, reactivate.

Revoking is always allowed. Bringing a person back is allowed only to the source that revoked
them, or to an admin (a directory hiccup never undoes an admin's revocation); a refusal
changes nothing and is audited. Another identity source that asserts a revoked person
inactive stands beside the revoking one: the person comes back (but by an admin) only once
every standing source lets go, in whichever order the sources spoke. A revocation the schedule
made because an end date passed is let go by the source that set that date once it gives a
later one still to come, or none (a renewed contract), and says the person is active.
Every operation takes a session, locks the person and reads them as they are now (once per
transaction, models.person_lock), writes an audit event, and never commits.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Exists, Select, bindparam, inspect, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import audit, change_writes, driver_writes, key_scope, outbox, person_lock
from models.actions import (
    exit_spend,
    invitations,
    key_revocation,
    last_admin,
    mass_change,
    reviews,
    tokens,
)
from models.actions.mass_change import GateRequest
from models.actor import Actor
from models.arrival import arrival
from models.base import new_id, utcnow
from models.entities import (
    ApiToken,
    AuditEvent,
    Budget,
    IdentityLink,
    Invitation,
    KeyCutoff,
    MassChange,
    OrganisationSettings,
    OutboxMessage,
    Revocation,
    User,
    VirtualApiKey,
)
from models.enums import ChangeStatus, LeaverInvitationPolicy, OwnerType, Source, UserStatus
from models.errors import InvalidTransition
from models.snapshots import user_snapshot
from models.text import clean_text

TASK_OPEN_REVIEW = "reviews.open_for_revocation"
# What a revocation's writes may hold new, written as plain rows (see change_writes): itself,
# audit events, outbox messages, its keys' cut-offs.
PLAIN_ROWS = (Revocation, AuditEvent, OutboxMessage, KeyCutoff)
HOLDINGS = "odock.revocation_holdings"  # session.info key, see revoking_many
LOCKED_HOLDINGS = "odock.locked_holdings"  # session.info key, see read_holdings
REACTIVATION_REFUSED = "user.reactivation_refused"
REVOCATION_JOINED = "user.revocation_joined"
# Sources that never bring a person back of their own (an admin brings back anyone; a passed
# end date is cleared by the reactivation): they never stand beside a revoking source.
NOT_STANDING = frozenset({Source.ADMIN, Source.SCHEDULE})
USED_KEYS_REFUSAL = (
    "a key this revocation disabled was used after it (an open usage_after_revocation finding): "
    "resolve or dismiss that finding, or reactivate with restore_used_keys to re-enable it anyway"
)


class Outcome(StrEnum):
    """What a requested status change did."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"  # the person is already in the asserted state
    REFUSED = "refused"  # the policy forbids it (audited)
    HELD = "held"  # quarantined by the mass-change gate, waiting for an admin


@dataclass(frozen=True)
class Holdings:
    """Which of some people own any admin-API token, sent any invitation or own any budget,
    whatever its state: a revocation of anyone else among them has none of these to end and
    skips the statements that would look (a drain batch revokes many people at once; a single
    revocation reads its person's in one statement, `of_one`).
    'Any, whatever its state' so that what the batch itself changes before a revocation (a
    reactivation thawing a budget) is still looked at. Read in the batch's transaction; one
    another transaction gives such a person while the batch runs (milliseconds) is missed as
    one given just after a per-revocation look would be (a revoked person's admin token is
    refused at use in any case: tokens.acting_user requires an ACTIVE user)."""

    people: frozenset[uuid.UUID]
    with_tokens: frozenset[uuid.UUID]
    with_invitations: frozenset[uuid.UUID]
    with_budgets: frozenset[uuid.UUID]
    # Who has a revocation the mass-change gate holds; None: not read (a drain batch closes
    # held changes as it goes, so each revocation in it looks for its own).
    with_holds: frozenset[uuid.UUID] | None = None
    # Who holds any key a revocation of them looks at (key_scope.held_by: whatever the policy
    # and whether revoked or not); None: not read, the revocation's keys' UPDATE looks.
    with_keys: frozenset[uuid.UUID] | None = None

    @classmethod
    def read(cls, session: Session, user_ids: Iterable[uuid.UUID]) -> Holdings:
        people = sorted(set(user_ids))
        if not people:
            return cls(frozenset(), frozenset(), frozenset(), frozenset())

        def owners(
            column: InstrumentedAttribute[uuid.UUID] | InstrumentedAttribute[uuid.UUID | None],
            *where: ColumnElement[bool],
        ) -> frozenset[uuid.UUID]:
            query = select(column).where(column.in_(people), *where).distinct()
            return frozenset(owner for owner in session.scalars(query) if owner is not None)

        return cls(
            people=frozenset(people),
            with_tokens=owners(ApiToken.user_id),
            with_invitations=owners(Invitation.invited_by_user_id),
            with_budgets=owners(Budget.owner_id, Budget.owner_type == OwnerType.USER),
        )

    @classmethod
    def of_one(cls, session: Session, user_id: uuid.UUID) -> Holdings:
        """One person's, with their held changes, in one statement: a single revocation of
        someone who, as most people, holds none of these then makes one round trip, not four."""

        (row,) = driver_writes.run(session, _holdings_of_one(), {"user_id": user_id})
        return cls.of_found(user_id, row)

    @classmethod
    def of_found(
        cls, user_id: uuid.UUID, found: Sequence[bool], *, keys: bool | None = None
    ) -> Holdings:
        """One person's, from the values of `held_by`'s columns for them (and of
        `keys_held_by`'s, when the caller read it)."""
        tokens, invitations, budgets, holds = (
            frozenset({user_id}) if held else frozenset() for held in found
        )
        with_keys = None if keys is None else frozenset({user_id} if keys else ())
        return cls(frozenset({user_id}), tokens, invitations, budgets, holds, with_keys)

    def may_hold(self, user_id: uuid.UUID, kind: frozenset[uuid.UUID] | None) -> bool:
        return user_id not in self.people or kind is None or user_id in kind

    def may_hold_any(self, user_id: uuid.UUID) -> bool:
        kinds = (self.with_keys, self.with_tokens, self.with_invitations, self.with_budgets)
        return any(self.may_hold(user_id, kind) for kind in (*kinds, self.with_holds))


@functools.cache
def _holdings_of_one() -> Select[bool, bool, bool, bool]:
    """Holdings.of_one's statement, kept: built (and its cache key made) once per process,
    the person bound at each execution."""
    user_id: BindParameter[uuid.UUID] = bindparam("user_id")
    return select(*held_by(user_id))


def held_by(
    person: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
) -> tuple[Exists, Exists, Exists, Exists]:
    """Whether the person (a value, or a column of a caller's statement) owns any admin-API
    token, sent any invitation, owns any budget, has a held change: the columns a caller's
    own statement adds to read them with its own row (see read_holdings)."""

    def held(column: InstrumentedAttribute[Any], *where: ColumnElement[bool]) -> Exists:
        return select(column).where(column == person, *where).exists()

    return (
        held(ApiToken.user_id),
        held(Invitation.invited_by_user_id),
        held(Budget.owner_id, Budget.owner_type == OwnerType.USER),
        held(MassChange.user_id, MassChange.status == ChangeStatus.HELD),
    )


def keys_held_by(person: InstrumentedAttribute[uuid.UUID]) -> Exists:
    """Whether the person holds any key a revocation of them looks at (key_scope.held_by:
    whatever the policy, revoked or not): the column a caller reads beside `held_by`'s, so
    that a revocation of someone who holds none skips its keys' UPDATE."""
    return select(VirtualApiKey.id).where(key_scope.held_by(person)).exists()


def read_holdings(session: Session, holdings: Holdings) -> None:
    """The caller read these people's holdings (`held_by`) with their rows, after locking
    them, in the session's current transaction: a revocation of one of them in it uses these
    instead of a look of its own (a SCIM write reads them with the user it locked)."""
    session.info[LOCKED_HOLDINGS] = (session.get_transaction(), holdings)


@contextmanager
def revoking_many(session: Session, user_ids: Iterable[uuid.UUID]) -> Iterator[None]:
    """Revocations of these people in this session read what they own up front, in three
    statements for all of them (see Holdings)."""
    session.info[HOLDINGS] = Holdings.read(session, user_ids)
    try:
        yield
    finally:
        session.info.pop(HOLDINGS, None)


def _holdings_read(session: Session, user_id: uuid.UUID) -> Holdings | None:
    """What the batch read up front, or the caller with its lock (read_holdings), if either
    did for this person."""
    batch: Holdings | None = session.info.get(HOLDINGS)
    if batch is not None and user_id in batch.people:
        return batch
    transaction, locked = session.info.get(LOCKED_HOLDINGS, (None, None))
    if locked is not None and transaction is session.get_transaction() and user_id in locked.people:
        return locked
    return None


def may_reactivate(revoked_by: Source | None, source: Source) -> bool:
    """The rule: only the source that revoked a person, or an admin, brings them back (a
    person revoked with no revocation on record, only an admin)."""
    return source is Source.ADMIN or (revoked_by is not None and revoked_by is source)


def ended_access_reason(ends_at: datetime, set_by: Source | None) -> str:
    """The reason of the schedule's revocation at a passed end date, for people to read (the
    revocation keeps the date and its source in columns of their own, see `ended_access`)."""
    moment = ends_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"access ended at {moment} (the date {end_date_setter(set_by).value} set)"


def end_date_setter(set_by: Source | None) -> Source:
    """Who set a person's end date: an admin, when no source is on record (dates set before
    their source was kept)."""
    return set_by or Source.ADMIN


def ended_access(revocation: Revocation | None) -> tuple[datetime, Source] | None:
    """The end date whose passing made this schedule revocation, and who set it; None for
    any other revocation (or one recorded before the source was)."""
    if revocation is None or revocation.source is not Source.SCHEDULE:
        return None
    if revocation.ended_access_at is None or revocation.ended_access_source is None:
        return None
    return revocation.ended_access_at, revocation.ended_access_source


def _passed_end(user: User, actor: Actor) -> dict[str, object]:
    """What a revocation by the schedule records of the date that passed: the person's end
    date and who set it."""
    if actor.source is not Source.SCHEDULE or user.access_ends_at is None:
        return {}
    return {
        "ended_access_at": user.access_ends_at,
        "ended_access_source": end_date_setter(user.access_ends_source),
    }


def end_extended(
    ended: tuple[datetime, Source] | None,
    source: Source,
    ends_at: datetime | None,
    now: datetime,
) -> bool:
    """The rule: the source that set the date that ended the person's access now gives a
    later one still to come, or none. A push repeating the passed date does not."""
    if ended is None or ended[1] is not source or source in NOT_STANDING:
        return False
    return ends_at is None or ends_at > max(ended[0], now)


def _end_extended_by(revocation: Revocation | None, user: User, source: Source) -> bool:
    """Whether `source`, asserting the person active, takes back this schedule revocation:
    the person's end date is now the one `source` gives (it set it last, or cleared it)."""
    if user.access_ends_at is not None and user.access_ends_source is not source:
        return False
    if Source.SCHEDULE not in standing_sources(revocation):
        return False
    return end_extended(ended_access(revocation), source, user.access_ends_at, utcnow())


def standing_sources(revocation: Revocation | None) -> list[Source]:
    """The sources whose assertion that the person is inactive still stands."""
    if revocation is None:
        return []
    if revocation.standing_sources is None:
        return [revocation.source]
    return [Source(value) for value in revocation.standing_sources]


def _may_reactivate_over(standing: list[Source], source: Source) -> bool:
    return any(may_reactivate(revoked_by, source) for revoked_by in standing) or (
        may_reactivate(None, source)
    )


def _joining(standing: list[Source], sources: Iterable[Source]) -> list[Source]:
    """Of these sources asserting a revoked person inactive, those that would now stand."""
    return sorted({s for s in sources if s not in NOT_STANDING and s not in standing})


def _stand_beside(revocation: Revocation, sources: Iterable[Source]) -> list[Source]:
    """These sources also hold the person inactive now; returns those newly standing."""
    standing = standing_sources(revocation)
    joining = _joining(standing, sources)
    if joining:
        revocation.standing_sources = [s.value for s in [*standing, *joining]]
    return joining


def set_active(
    session: Session,
    *,
    user: User,
    active: bool,
    actor: Actor,
    reason: str = "",
    gate: GateRequest | None = None,
) -> Outcome:
    """Bring a user to the state an identity source asserts (SCIM `active`, an IdP event, a
    directory entry); never raises for a state the user is already in.

    `gate`: a push source's change passes the mass-change gate, which may hold a revocation
    (HELD: the person keeps access until an admin decides); the same source asserting active
    again takes its held revocation back. None applies at once (LDAP, an admin's approval).
    """
    person_lock.read_locked(session, user)
    if active:
        if gate is not None:
            mass_change.withdraw(session, user=user, kinds=mass_change.STATUS_KINDS, actor=actor)
        if user.status is not UserStatus.REVOKED:
            return Outcome.UNCHANGED
        return reactivate(session, user=user, actor=actor)
    if user.status is UserStatus.REVOKED:
        _join_revocation(session, user=user, actor=actor, reason=reason)
        return Outcome.UNCHANGED
    if gate is not None and not mass_change.admit(session, user=user, request=gate, actor=actor):
        return Outcome.HELD
    if user.status is UserStatus.ACTIVE:
        revoke(session, user=user, actor=actor, reason=reason)
        return Outcome.APPLIED
    if user.status is UserStatus.PENDING:
        decline(session, user=user, actor=actor, reason=reason)
        return Outcome.APPLIED
    return Outcome.UNCHANGED


def change_status(
    session: Session, *, user: User, status: UserStatus, actor: Actor, reason: str = ""
) -> Outcome:
    """Route a requested status to the operation that owns that transition."""
    person_lock.read_locked(session, user)
    if status is UserStatus.REVOKED:
        # Through set_active even when REVOKED already: an admin's word then pins the person.
        return set_active(session, user=user, active=False, actor=actor, reason=reason)
    if status is user.status:
        return Outcome.UNCHANGED
    if status is UserStatus.ACTIVE:
        if user.status is UserStatus.PENDING:
            approve(session, user=user, actor=actor)
            return Outcome.APPLIED
        return reactivate(session, user=user, actor=actor)
    raise InvalidTransition(f"a {user.status} user cannot go back to PENDING")


def approve(session: Session, *, user: User, actor: Actor) -> User:
    person_lock.read_locked(session, user)
    _require_status(user, UserStatus.PENDING, "approve")
    before = user_snapshot(user)
    user.status = UserStatus.ACTIVE
    user.updated_at = utcnow()
    audit.record_user_change(
        session, user, actor, "user.approved", before=before, extra=_enrolled_by(session, user)
    )
    return user


def decline(session: Session, *, user: User, actor: Actor, reason: str = "") -> Revocation:
    person_lock.read_locked(session, user)
    _require_status(user, UserStatus.PENDING, "decline")
    return _revoke(
        session,
        user=user,
        actor=actor,
        reason=reason or "declined",
        action="user.declined",
        extra=_enrolled_by(session, user),
    )


def revoke(session: Session, *, user: User, actor: Actor, reason: str = "") -> Revocation:
    """Cut an ACTIVE user off: status REVOKED, owned keys per policy, their admin-API tokens,
    review and cache flush. An admin revoking someone another source already revoked pins
    them instead: the admin stands beside that source, so only an admin brings them back (not
    a renewed end date, not the source letting go)."""
    person_lock.read_locked(session, user)
    if user.status is UserStatus.REVOKED and actor.source is Source.ADMIN:
        pinned = _admin_pin(session, user=user, actor=actor, reason=reason)
        if pinned is not None:
            return pinned
    _require_status(user, UserStatus.ACTIVE, "revoke")
    return _revoke(session, user=user, actor=actor, reason=reason, action="user.revoked")


def admin_may_revoke(session: Session, user: User) -> bool:
    """Whether an admin's revoke does anything: it cuts off an ACTIVE person, and pins one
    another source revoked (see `revoke`)."""
    if user.status is UserStatus.ACTIVE:
        return True
    revocation = latest_revocation(session, user.id) if user.status is UserStatus.REVOKED else None
    return revocation is not None and Source.ADMIN not in standing_sources(revocation)


def reactivate(
    session: Session, *, user: User, actor: Actor, restore_used_keys: bool = False
) -> Outcome:
    """Undo the latest revocation (status back, and only the keys it disabled) when the
    policy lets this actor; otherwise REFUSED, audited, nothing changed. A key used after the
    revocation (an open finding says so) is re-enabled only with `restore_used_keys` from an
    admin; without it the whole reactivation is refused."""
    person_lock.read_locked(session, user)
    _require_status(user, UserStatus.REVOKED, "reactivate")
    revocation = latest_revocation(session, user.id)
    standing = standing_sources(revocation)
    extended = _end_extended_by(revocation, user, actor.source)
    if not extended and not _may_reactivate_over(standing, actor.source):
        _refuse(session, user, actor, revocation)
        return Outcome.REFUSED
    letting_go = {actor.source, Source.SCHEDULE} if extended else {actor.source}
    still = [s for s in standing if s not in letting_go] if actor.source is not Source.ADMIN else []
    if revocation is not None and still:
        # This source lets go; the person stays revoked while another still holds them.
        revocation.standing_sources = [s.value for s in still]
        _refuse(session, user, actor, revocation, released=True)
        return Outcome.REFUSED
    used = reviews.used_after_revocation(session, revocation.id) if revocation else []
    despite_usage = restore_used_keys and actor.source is Source.ADMIN
    if used and not despite_usage:
        _refuse(session, user, actor, revocation, keys_used_after_revocation=used)
        return Outcome.REFUSED
    before = user_snapshot(user)
    user.status = UserStatus.ACTIVE
    user.updated_at = utcnow()
    extra: dict[str, object] = {"keys_restored": []}
    if revocation is not None:
        revocation.undone_at = utcnow()
        extra["keys_restored"] = _restore_keys(session, user, revocation, actor)
        thawed = exit_spend.thaw_budgets(session, revocation=revocation, actor=actor)
        extra["budgets_thawed"] = [str(budget_id) for budget_id in thawed]
    extra.update(_clear_passed_end(user))
    if extended and (ended := ended_access(revocation)) is not None:
        # The renewal that brought them back: the date that had ended their access.
        extra["access_end_extended_from"] = ended[0].isoformat()
    if used:
        extra["restored_despite_usage"] = [str(key_id) for key_id in used]
    audit.record_user_change(session, user, actor, "user.reactivated", before=before, extra=extra)
    return Outcome.APPLIED


def _clear_passed_end(user: User) -> dict[str, object]:
    """An end date that has passed would revoke the person again at the next beat: a
    reactivation takes it away (and says so in its audit event)."""
    ends_at = user.access_ends_at
    if ends_at is None or ends_at > utcnow():
        return {}
    user.access_ends_at = None
    user.access_ends_source = None
    return {"access_end_cleared": ends_at.isoformat()}


def latest_revocation(session: Session, user_id: uuid.UUID) -> Revocation | None:
    """The revocation in force: the newest one not undone."""
    return session.scalar(
        select(Revocation)
        .where(Revocation.user_id == user_id, Revocation.undone_at.is_(None))
        .order_by(Revocation.revoked_at.desc())
        .limit(1)
        # As it is now, not as an earlier read in this session left it: decisions on it
        # are made under the person's lock (models.person_lock).
        .execution_options(populate_existing=True)
    )


@dataclass(frozen=True)
class Reactivation:
    """What the policy lets a source do for one revoked person, for a planner that decides
    many people at once (an LDAP sync)."""

    allowed: bool  # the source may bring them back whatever it says of their date
    # The end date whose passing made the schedule revoke them, when the source set it: a
    # later one still to come, or none, from the source brings them back (see end_extended).
    ended_at: datetime | None
    # The source does not hold them out yet: saying they are inactive (disabled, expired,
    # gone) makes it stand beside the revoking source (set_active), so that source alone
    # cannot bring them back over it. A planner that skipped this left the person to the
    # revoking source: SCIM's active=true brought back someone the directory had disabled.
    joins: bool = False


def reactivations(
    session: Session, user_ids: Iterable[uuid.UUID], source: Source
) -> Iterator[tuple[uuid.UUID, Reactivation]]:
    """Each of these revoked users with what `source` may do for them (one query per 500)."""
    ids = list(user_ids)
    for start in range(0, len(ids), 500):
        rows = session.scalars(
            select(Revocation)
            .where(Revocation.user_id.in_(ids[start : start + 500]), Revocation.undone_at.is_(None))
            .order_by(Revocation.revoked_at)
        )
        latest = {row.user_id: row for row in rows}  # later rows overwrite earlier
        for user_id in ids[start : start + 500]:
            yield user_id, _reactivation(latest.get(user_id), source)


def _reactivation(revocation: Revocation | None, source: Source) -> Reactivation:
    standing = standing_sources(revocation)
    ended = ended_access(revocation) if Source.SCHEDULE in standing else None
    return Reactivation(
        allowed=_may_reactivate_over(standing, source),
        ended_at=ended[0] if ended is not None and ended[1] is source else None,
        joins=revocation is not None and bool(_joining(standing, [source])),
    )


def _join_revocation(session: Session, *, user: User, actor: Actor, reason: str) -> None:
    """A source asserts a revoked person inactive: unless it already stands (or never brings
    anyone back), it now stands beside the revoking source, audited, so that the revoking
    source alone cannot bring the person back over it. An admin pins them, whichever door
    the admin came through (`revoke`, or a status set to REVOKED)."""
    if actor.source is Source.ADMIN:
        _admin_pin(session, user=user, actor=actor, reason=reason)
        return
    if actor.source in NOT_STANDING:
        return
    revocation = latest_revocation(session, user.id)
    if revocation is None or not _stand_beside(revocation, [actor.source]):
        return
    _audit_joined(session, user, actor, revocation, reason)


def _admin_pin(session: Session, *, user: User, actor: Actor, reason: str) -> Revocation | None:
    """The admin joins the standing sources of the person's revocation (see `revoke`); None
    when it is an admin's already (nothing to add: refused as a revocation of a REVOKED user)."""
    revocation = latest_revocation(session, user.id)
    if revocation is None or Source.ADMIN in (standing := standing_sources(revocation)):
        return None
    revocation.standing_sources = [s.value for s in [*standing, Source.ADMIN]]
    _audit_joined(session, user, actor, revocation, reason)
    return revocation


def _audit_joined(
    session: Session, user: User, actor: Actor, revocation: Revocation, reason: str
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action=REVOCATION_JOINED,
        target_type="user",
        after={
            "revocation_id": str(revocation.id),
            "revoked_by": revocation.source.value,
            "standing_sources": revocation.standing_sources,
            "reason": clean_text(reason, field="reason", max_length=500, required=False),
        },
    )


def _refuse(
    session: Session,
    user: User,
    actor: Actor,
    revocation: Revocation | None,
    keys_used_after_revocation: list[uuid.UUID] | None = None,
    *,
    released: bool = False,
) -> None:
    """Audit a refused reactivation; `released`: the actor's own hold on the person ended
    (it no longer stands), but another source's still does."""
    used = [str(key_id) for key_id in keys_used_after_revocation or []]
    standing = [s.value for s in standing_sources(revocation)]
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action=REACTIVATION_REFUSED,
        target_type="user",
        after={
            "revoked_by": revocation.source.value if revocation else None,
            "revocation_id": str(revocation.id) if revocation else None,
            "requested_by": actor.source.value,
            **({"still_revoked_by": standing} if released or len(standing) > 1 else {}),
            **({"released": actor.source.value} if released else {}),
            **({"keys_used_after_revocation": used} if used else {}),
        },
    )


def _enrolled_by(session: Session, user: User) -> dict[str, object]:
    """The invitation a pending user came through, so approvals link to it in the audit."""
    invitation_id = session.scalar(
        select(IdentityLink.external_id).where(
            IdentityLink.user_id == user.id, IdentityLink.source == Source.INVITATION
        )
    )
    return {"invitation_id": invitation_id} if invitation_id else {}


def _revoke(
    session: Session,
    *,
    user: User,
    actor: Actor,
    reason: str,
    action: str,
    extra: dict[str, object] | None = None,
) -> Revocation:
    reason = clean_text(reason, field="reason", max_length=500, required=False)
    # The organisation keeps an admin, or an identity source's revocation says it has none.
    last_admin.before_losing_admin(session, user=user, actor=actor, cause=last_admin.Cause.REVOKED)
    before = user_snapshot(user)
    if inspect(user).pending:
        # Written first: no relationship tells the flush that a revocation refers to it.
        session.flush()
    now = utcnow()
    revocation = Revocation(
        # Given here, not by the flush: a revocation with nothing else to end is written with
        # the transaction's last rows, after its review's message names it.
        id=new_id(),
        revoked_at=now,
        organisation_id=user.organisation_id,
        user_id=user.id,
        source=actor.source,
        actor=str(actor),
        reason=reason,
        previous_status=user.status,
        **_passed_end(user, actor),
    )
    session.add(revocation)
    user.status = UserStatus.REVOKED
    user.updated_at = now
    holdings = _holdings_read(session, user.id)
    if holdings is not None and not holdings.may_hold_any(user.id):
        # Nothing to end but the access itself: no statement of its own, the status and the
        # revocation are written with the rest of the transaction's rows.
        revoked: list[str] = []
    else:
        # Written now, both (the keys' UPDATE below refers to the revocation), as plain rows.
        change_writes.flush_changes(session, PLAIN_ROWS)
        revoked = _revoke_held_keys(session, user, revocation, actor, holdings)
        # The keys' audit events and invalidation as plain rows, before the looks below
        # would autoflush them.
        change_writes.flush_changes(session, PLAIN_ROWS)
        holdings = holdings or Holdings.of_one(session, user.id)
    tokens_revoked = (
        tokens.revoke_person_tokens(
            session, user_id=user.id, revocation_id=revocation.id, actor=actor
        )
        if holdings.may_hold(user.id, holdings.with_tokens)
        else []
    )
    invitations_revoked = (
        _revoke_sent_invitations(session, user, actor)
        if holdings.may_hold(user.id, holdings.with_invitations)
        else []
    )
    budgets_frozen = (
        exit_spend.freeze_budgets(session, revocation=revocation, actor=actor)
        if holdings.may_hold(user.id, holdings.with_budgets)
        else []
    )
    superseded = (
        mass_change.supersede_by_revocation(session, user=user, actor=actor)
        if holdings.may_hold(user.id, holdings.with_holds)
        else []
    )
    # A source whose revocation the gate held still wants the person out: it stands too.
    _stand_beside(revocation, superseded)
    audit.record_user_change(
        session,
        user,
        actor,
        action,
        before=before,
        extra={
            "keys_revoked": revoked,
            "tokens_revoked": [str(token_id) for token_id in tokens_revoked],
            "invitations_revoked": invitations_revoked,
            "budgets_frozen": [str(budget_id) for budget_id in budgets_frozen],
            **({"holds_superseded": len(superseded)} if superseded else {}),
            **(
                {"standing_sources": revocation.standing_sources}
                if revocation.standing_sources
                else {}
            ),
            "reason": reason,
            **(extra or {}),
        },
    )
    # Eager: published right after commit with no second transaction. Should the process die
    # in between, the cut-off reaper opens the review seconds later (its REVIEW_GRACE), as it
    # re-drives the key invalidation above (eager too: its cut-off is its safety net).
    outbox.enqueue(session, TASK_OPEN_REVIEW, eager=True, revocation_id=str(revocation.id))
    return revocation


def _revoke_held_keys(
    session: Session,
    user: User,
    revocation: Revocation,
    actor: Actor,
    holdings: Holdings | None,
) -> list[str]:
    """The person's keys revoked, unless what was read with their lock says they hold none."""
    if holdings is not None and not holdings.may_hold(user.id, holdings.with_keys):
        return []
    return _revoke_owned_keys(session, user, revocation, actor)


def _revoke_owned_keys(
    session: Session, user: User, revocation: Revocation, actor: Actor
) -> list[str]:
    """Disable at once the keys the key-scope policy says a revocation revokes."""
    revoked = key_revocation.revoke_keys(
        session,
        organisation_id=user.organisation_id,
        scope=key_scope.kept_revocation_scope(),
        scope_params={"scope_organisation_id": user.organisation_id, "scope_user_id": user.id},
        actor=actor,
        reason="revoked",
        revocation_id=revocation.id,
        audit_detail={"user_id": str(user.id)},
        # the time-to-kill clock travels with the job
        invalidation_detail={"source": actor.source.value, "arrived_at": arrival()},
    )
    return [str(key_id) for key_id in revoked]


def _revoke_sent_invitations(session: Session, user: User, actor: Actor) -> list[str]:
    """A leaver's pending invitations die with their access, unless the organisation keeps
    them (a reactivation does not bring them back: they can be sent again)."""
    settings = session.get_one(OrganisationSettings, user.organisation_id)
    if settings.leaver_invitation_policy is LeaverInvitationPolicy.KEEP:
        return []
    return [str(i.id) for i in invitations.revoke_sent_by(session, inviter=user, actor=actor)]


def _restore_keys(session: Session, user: User, revocation: Revocation, actor: Actor) -> list[str]:
    restored = key_revocation.restore_keys(
        session,
        organisation_id=user.organisation_id,
        revocation_id=revocation.id,
        actor=actor,
        reason="reactivated",
        audit_detail={"user_id": str(user.id)},
    )
    return [str(key_id) for key_id in restored]


def _require_status(user: User, expected: UserStatus, verb: str) -> None:
    if user.status is not expected:
        raise InvalidTransition(
            f"cannot {verb} a user whose status is {user.status}; it must be {expected}",
            current_status=user.status.value,
        )
