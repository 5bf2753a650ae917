"""Teams and memberships. Membership and its team role are separate from the org role."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.name_keys import composed, name_key
from models import audit, key_scope, locked_rows, membership_locks, person_lock, unique_rows
from models.actions import access_reviews, key_revocation
from models.actor import Actor
from models.base import utcnow
from models.db import conflict_insert
from models.entities import (
    Organisation,
    RevocationReview,
    Team,
    TeamMembership,
    User,
    VirtualApiKey,
)
from models.enums import ReviewCause, Source, TeamRole, UserStatus
from models.errors import AuditedRefusal, Conflict, InvalidTransition, NotFound
from models.snapshots import membership_row_snapshot, membership_snapshot, team_snapshot
from models.text import check_key_name, clean_text

# Memberships these sources write record what an identity provider says (an Okta group, a
# signed event's group): kept as it says, whatever the person's status, so that a revoked
# member brought back finds their teams. (SCIM groups and LDAP syncs write theirs in bulk,
# models.actions.scim and models.directory.memberships, and record them the same way.)
RECORDED_FROM_PROVIDER = frozenset({Source.SCIM, Source.LDAP, Source.OKTA, Source.EVENTS})
MEMBERSHIP_REFUSED = "user.team_membership_refused"


class MemberRevoked(AuditedRefusal, InvalidTransition):
    """A person's decision (an admin or manager) to put a REVOKED person in a team, or change
    their team role: it grants nothing, so it is a mistake; audited, nothing else changed."""


def get_team(session: Session, organisation_id: uuid.UUID, team_id: uuid.UUID) -> Team:
    team = session.get(Team, team_id)
    if team is None or team.organisation_id != organisation_id:
        raise NotFound("team not found")
    return team


def find_team_by_name(session: Session, organisation_id: uuid.UUID, name: str) -> Team | None:
    return session.scalar(
        select(Team).where(
            Team.organisation_id == organisation_id, Team.name_key == name_key(name.strip())
        )
    )


def create_team(
    session: Session,
    *,
    organisation: Organisation,
    name: str,
    actor: Actor,
    external_source: Source | None = None,
    external_id: str | None = None,
) -> Team:
    name = validate_team_name(name)
    if find_team_by_name(session, organisation.id, name):
        raise Conflict(f"a team named {name!r} already exists", field="name")
    team = Team(
        organisation_id=organisation.id, external_source=external_source, external_id=external_id
    )
    team.set_name(name)
    # A concurrent create of the same name may win meanwhile: then a Conflict.
    with unique_rows.claimed(session, lambda: _name_taken(name)):
        session.add(team)
    _audit_team(session, team, actor, "team.created", before=None)
    return team


def rename_team(session: Session, *, team: Team, name: str, actor: Actor) -> Team:
    """The team named `name`. The rule of team names applies to a new name only: a team named
    before it (with a hidden character, in NFD) keeps its name through a write that sends it
    again (a SCIM PUT of its members), and can be renamed to a clean one."""
    # Decided on the name as it is now: of two renames at once the later reads the earlier's
    # name (its audit event's before), and a rename to the name it already has is no change.
    team = locked_rows.locked_or_404(session, team, "team not found")
    if name.strip() == team.name:
        return team
    name = validate_team_name(name)
    if name == team.name:
        return team
    clash = find_team_by_name(session, team.organisation_id, name)
    if clash is not None and clash.id != team.id:
        raise _name_taken(name)
    before = team_snapshot(team)
    # Another team may take the name meanwhile (its rename or create not yet committed).
    with unique_rows.claimed(session, lambda: _name_taken(name)):
        team.set_name(name)
        team.updated_at = utcnow()
    _audit_team(session, team, actor, "team.renamed", before=before)
    return team


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a team named {name!r} already exists", field="name")


def delete_team(session: Session, *, team: Team, actor: Actor) -> RevocationReview | None:
    """Delete a team, from any source (admin API, CLI, SCIM, LDAP). Its keys are revoked or
    handed to their creators per policy and its budgets and quotas flagged, in the review
    this returns (None when the team held none)."""
    # The team's keys first, as the review task locks them: the delete's `SET NULL` on them
    # then cannot deadlock with a task revoking one of them.
    key_revocation.lock_keys(session, VirtualApiKey.owner_team_id == team.id)
    # Then the team as a whole (models.membership_locks), read again: of two deletes at once
    # the later finds it gone (not found, as serially), instead of both answering and auditing
    # a deletion.
    if not membership_locks.lock_teams(session, [team.id], whole=True):
        raise NotFound("team not found")
    session.refresh(team)
    review = access_reviews.review_team_deletion(session, team=team, actor=actor)
    before = {**team_snapshot(team), "review_id": str(review.id) if review else None}
    _audit_team(session, team, actor, "team.deleted", before=before, deleted=True)
    session.delete(team)
    return review


def get_membership(session: Session, team: Team, user: User) -> TeamMembership | None:
    return session.get(TeamMembership, (team.id, user.id))


def add_to_team(
    session: Session,
    *,
    team: Team,
    user: User,
    role: TeamRole,
    actor: Actor,
    source: Source | None = None,
) -> TeamMembership:
    """Add a member, or change the team role of an existing one. Refused (MemberRevoked)
    for a REVOKED person unless an identity provider reports it (RECORDED_FROM_PROVIDER)."""
    if team.organisation_id != user.organisation_id:
        raise NotFound("user not found")
    if (source or actor.source) not in RECORDED_FROM_PROVIDER:
        _refuse_a_revoked_person(session, team, user, role, actor)
    # Locked and read again (models.membership_locks): a role changed on a membership that a
    # removal deleted meanwhile otherwise updated no row and failed.
    membership, created = membership_locks.lock_membership(session, team.id, user.id), False
    if membership is None:
        membership, created = _insert_membership(session, team, user, role, source or actor.source)
    before = None if created else membership_snapshot(membership)
    if not created:
        if membership.role is role:
            return membership
        membership.role = role
        session.flush()
    _audit_membership(
        session,
        team,
        membership,
        actor,
        "team.member_added" if before is None else "team.member_role_changed",
        before,
    )
    if before is not None and before["role"] == TeamRole.MANAGER.value:
        access_reviews.review_team_role_lost(
            session, team=team, user=user, cause=ReviewCause.MANAGER_ROLE_LOST, actor=actor
        )
    return membership


def _refuse_a_revoked_person(
    session: Session, team: Team, user: User, role: TeamRole, actor: Actor
) -> None:
    """Decided on the person as they are under their lock, taken after the team's (models.
    membership_locks): of a revocation and an add at once, the later sees the earlier."""
    if not membership_locks.lock_teams(session, [team.id]):
        raise NotFound("team not found")  # deleted meanwhile: no refusal of it to audit
    person_lock.read_locked(session, user)
    if user.status is not UserStatus.REVOKED:
        return
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action=MEMBERSHIP_REFUSED,
        target_type="user",
        after={
            "team_id": str(team.id),
            "team_name": team.name,
            "team_role": role.value,
            "user_status": user.status.value,
            "reason": "user_revoked",
        },
    )
    raise MemberRevoked(
        f"{user.email} is REVOKED: a team membership would grant them nothing; "
        "reactivate them first",
        user_id=str(user.id),
        team_id=str(team.id),
    )


def _insert_membership(
    session: Session, team: Team, user: User, role: TeamRole, source: Source
) -> tuple[TeamMembership, bool]:
    """The membership written (True), or the one another transaction wrote a moment ago, read
    again and locked (False): the caller goes on as if it had found that one, as it would
    serially.

    The caller holds the team already as the membership's foreign key holds it (FOR KEY
    SHARE, models.membership_locks), before the row exists: a SCIM group write, which locks
    its team FOR UPDATE and then inserts its members, otherwise found this row in flight while
    its foreign-key check waited for the group's lock, and the two deadlocked. Held first,
    the insert waits for the group write to end, or the group write for this transaction."""
    membership = TeamMembership(team_id=team.id, user_id=user.id, role=role, source=source)
    try:
        with session.begin_nested():
            session.add(membership)
            session.flush()
    except IntegrityError:
        found = session.get_one(
            TeamMembership, (team.id, user.id), with_for_update=True, populate_existing=True
        )
        return found, False
    return membership, True


def remove_from_team(session: Session, *, team: Team, user: User, actor: Actor) -> bool:
    """Remove a member; False when they were not one (or no longer: the row is locked and
    read again, so of two removals at once the later finds nothing to remove)."""
    membership = membership_locks.lock_membership(session, team.id, user.id)
    if membership is None:
        return False
    before = membership_snapshot(membership)
    session.delete(membership)
    audit.record_change(
        session,
        actor=actor,
        subject=team,
        action="team.member_removed",
        target_type="team",
        before=before,
        after=None,
    )
    access_reviews.review_team_role_lost(
        session, team=team, user=user, cause=ReviewCause.LEFT_TEAM, actor=actor
    )
    return True


def add_members(
    session: Session, *, team: Team, users: Sequence[User], role: TeamRole, actor: Actor
) -> None:
    """Add people who were not members when the caller looked, at once: one INSERT of their
    memberships and one of their audit events (each `team.member_added`, as add_to_team's),
    as plain rows. A membership another transaction wrote meanwhile (an admin adding the same
    person) is left as it is and not audited again, as add_to_team does when it loses."""
    if not users:
        return
    if any(user.organisation_id != team.organisation_id for user in users):
        raise NotFound("user not found")
    session.flush()  # the pending writes first: these rows refer to them
    now = utcnow()
    rows = [
        {
            "team_id": team.id,
            "user_id": u.id,
            "role": role,
            "source": actor.source,
            "created_at": now,
        }
        for u in users
    ]
    table = cast(Table, TeamMembership.__table__)
    insert = conflict_insert(session.get_bind().dialect.name)
    inserted = set(
        session.scalars(
            insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.team_id, table.c.user_id])
            .returning(table.c.user_id),
            rows,
        )
    )
    added = [
        (None, membership_row_snapshot(team.id, u.id, role)) for u in users if u.id in inserted
    ]
    audit.record_many(
        session,
        actor=actor,
        subject=team,
        action="team.member_added",
        target_type="team",
        changes=added,
    )


def remove_members(session: Session, *, team: Team, users: Sequence[User], actor: Actor) -> None:
    """Remove these people at once (those not members are skipped): one DELETE of their
    memberships and one INSERT of their audit events (each `team.member_removed`, as
    remove_from_team's); the access review of the team keys a leaver created is opened, as
    remove_from_team does, for the few who created any."""
    if not users:
        return
    session.flush()
    by_id = {user.id: user for user in users}
    members = session.execute(
        select(TeamMembership.user_id, TeamMembership.role)
        .where(TeamMembership.team_id == team.id, TeamMembership.user_id.in_(list(by_id)))
        .order_by(TeamMembership.user_id)
    ).all()
    if not members:
        return
    leaving = [user_id for user_id, _ in members]
    session.execute(
        delete(TeamMembership)
        .where(TeamMembership.team_id == team.id, TeamMembership.user_id.in_(leaving))
        .execution_options(synchronize_session="fetch")
    )
    removed = [(membership_row_snapshot(team.id, u, role), None) for u, role in members]
    audit.record_many(
        session,
        actor=actor,
        subject=team,
        action="team.member_removed",
        target_type="team",
        changes=removed,
    )
    creators = set(
        session.scalars(
            select(VirtualApiKey.created_by_user_id)
            .where(key_scope.team_keys(team.id), VirtualApiKey.created_by_user_id.in_(leaving))
            .distinct()
        )
    )
    for user_id in leaving:
        if user_id in creators:
            access_reviews.review_team_role_lost(
                session, team=team, user=by_id[user_id], cause=ReviewCause.LEFT_TEAM, actor=actor
            )


def validate_team_name(name: str, *, field: str = "name") -> str:
    """The team-name rule, for every path that names a team (admin, SCIM, LDAP's mapping):
    a name that is also the team's key (models.text.check_key_name), composed (NFC) as it is
    stored and keyed (connectors.name_keys)."""
    return check_key_name(composed(clean_text(name, field=field, max_length=200)), field=field)


def _audit_team(
    session: Session,
    team: Team,
    actor: Actor,
    action: str,
    *,
    before: dict | None,
    deleted: bool = False,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=team,
        action=action,
        target_type="team",
        before=before,
        after=None if deleted else team_snapshot(team),
    )


def _audit_membership(
    session: Session,
    team: Team,
    membership: TeamMembership,
    actor: Actor,
    action: str,
    before: dict | None,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=team,
        action=action,
        target_type="team",
        before=before,
        after=membership_snapshot(membership),
    )
