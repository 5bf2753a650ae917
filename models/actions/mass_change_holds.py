"""An admin's decision on changes the mass-change gate held: approve (they apply through
the same lifecycle operations as when they arrived, without the gate) or discard (dropped;
the person keeps access, and a passed end date that caused it is cleared, or the next beat
would revoke them after all). Either way every change is audited and the gate opens again
once its batch has nothing held."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import person_lock
from models.actions import access_end
from models.actions import mass_change as gate
from models.actions.identities import find_link, mark_link_deleted
from models.actions.lifecycle import Outcome, set_active
from models.actor import Actor
from models.entities import MassChange, ScimUser, User
from models.enums import ChangeKind, ChangeStatus, Source
from models.errors import InvalidTransition, NotFound


def get_hold(session: Session, organisation_id: uuid.UUID, hold_id: uuid.UUID) -> MassChange:
    held = session.get(MassChange, hold_id)
    if held is None or held.organisation_id != organisation_id or held.batch_id is None:
        raise NotFound(f"hold {hold_id} not found")
    return held


def batch_holds(
    session: Session, organisation_id: uuid.UUID, batch_id: uuid.UUID
) -> list[MassChange]:
    """The changes of a batch still held, oldest first; an unknown batch is not found."""
    every = list(
        session.scalars(
            select(MassChange)
            .where(MassChange.organisation_id == organisation_id, MassChange.batch_id == batch_id)
            .order_by(MassChange.created_at, MassChange.id)
        )
    )
    if not every:
        raise NotFound(f"batch {batch_id} not found")
    # Which are still held is read under the people's locks: a hold of the batch decided by
    # another admin a moment ago is left out, and the rest are decided (as in a serial order),
    # rather than the whole batch refused because that one is no longer held.
    _read_locked(session, every)
    return [held for held in every if held.status is ChangeStatus.HELD]


def approve(session: Session, *, holds: list[MassChange], actor: Actor) -> list[str]:
    """Apply held changes now, as their source asked; returns what each one did."""
    _read_locked(session, holds)
    _require_held(holds, "approved")
    outcomes = []
    for held in holds:
        # Taken before it applies: the revocation it carries out does not supersede it.
        held.status = ChangeStatus.APPROVED
        outcome = _apply(session, held, actor)
        gate.close(session, held=held, status=ChangeStatus.APPROVED, actor=actor, outcome=outcome)
        outcomes.append(outcome)
    _settle(session, holds, actor)
    return outcomes


def discard(session: Session, *, holds: list[MassChange], actor: Actor) -> None:
    """Drop held changes: nobody is revoked or demoted by them."""
    _read_locked(session, holds)
    _require_held(holds, "discarded")
    for held in holds:
        gate.close(session, held=held, status=ChangeStatus.DISCARDED, actor=actor)
        if held.source is Source.SCHEDULE:
            user = session.get_one(User, held.user_id)
            access_end.set_access_end(session, user=user, ends_at=None, actor=actor)
    _settle(session, holds, actor)


def _read_locked(session: Session, holds: list[MassChange]) -> None:
    """Lock the holds' people and read the holds again: two admins settling one batch at
    once, or an admin and a source taking its revocation back (which it does under the
    person's lock, see lifecycle), settle each hold once; the later finds it no longer held."""
    person_lock.lock_people(session, {held.user_id for held in holds})
    ids = sorted(held.id for held in holds)
    for start in range(0, len(ids), person_lock.BATCH):
        session.scalars(
            select(MassChange)
            .where(MassChange.id.in_(ids[start : start + person_lock.BATCH]))
            .execution_options(populate_existing=True)
        ).all()


def _require_held(holds: list[MassChange], verb: str) -> None:
    if not holds:
        raise InvalidTransition(f"nothing is held here any more to be {verb}")
    for held in holds:
        if held.status is not ChangeStatus.HELD:
            raise InvalidTransition(
                f"hold {held.id} is {held.status.value}; only a held change can be {verb}",
                current_status=held.status.value,
            )


def _settle(session: Session, holds: list[MassChange], actor: Actor) -> None:
    for organisation_id, source in sorted({(h.organisation_id, h.source) for h in holds}):
        gate.settle(session, organisation_id=organisation_id, source=source, actor=actor)


def _apply(session: Session, held: MassChange, actor: Actor) -> str:
    """Carry the change out as its source would have; the revocation stays the source's own
    (so the source may undo it), the approval is the admin's."""
    user = session.get_one(User, held.user_id)
    on_behalf = Actor(held.source, f"{held.actor} (approved by {actor})"[:255])
    if held.kind is ChangeKind.ROLE_DROP:
        return _drop_role(session, held, on_behalf)
    outcome = set_active(session, user=user, active=False, actor=on_behalf, reason=held.reason)
    changed = outcome is Outcome.APPLIED
    external_id = held.payload.get("link_external_id")
    if held.kind is ChangeKind.DELETE and external_id:
        link = find_link(session, held.organisation_id, held.source, str(external_id))
        if link is not None and link.deleted_at is None:
            mark_link_deleted(session, link=link, actor=on_behalf)
            changed = True
    return "applied" if changed else "unchanged"


def _drop_role(session: Session, held: MassChange, actor: Actor) -> str:
    """Group roles are worked out again from the groups as they are now: a role the IdP has
    granted again since is kept."""
    from models.actions.scim import apply_group_roles

    scim_user = session.get(ScimUser, uuid.UUID(str(held.payload.get("scim_user_id"))))
    if scim_user is None:
        return "unchanged"
    before = scim_user.user.role
    apply_group_roles(session, scim_user=scim_user, actor=actor, gated=False)
    return "applied" if scim_user.user.role is not before else "unchanged"
