"""The one order in which a change of team memberships takes its locks, whatever its source.

Memberships are written by the LDAP/AD sync (models.directory.memberships), SCIM group writes
(models.actions.scim), the admin API, invitations and IdP events (models.actions.teams'
add_to_team and remove_from_team) and a team's deletion. Each takes its locks here, in this
order, each kind in id order:

1. Teams (`lock_teams`). FOR UPDATE by a writer that decides a team as a whole: a SCIM group
   write, which reads the members and then sets them, and a team's deletion. FOR KEY SHARE by
   a writer of some members (the admin API, an LDAP run: all the teams of its plan, at its
   start), the lock a membership's foreign key takes anyway: such writers do not wait for
   each other, only for a writer of the whole team, and it for them.
2. People whose status or role the change decides on (models.person_lock, FOR NO KEY UPDATE):
   a SCIM group's members whose mapped role changes, an LDAP run's people, the person an
   admin or manager adds to a team (refused when REVOKED: models.actions.teams).
3. Membership rows (`lock_membership`), FOR UPDATE and read again, by a writer that changes
   or removes one it read: of two writers of one membership the later reads what the earlier
   wrote (a removal, a role), instead of updating a row deleted meanwhile.

Teams come first because a SCIM group write knows which people it changes only once it holds
its team and has read its members. A writer that held a person and then waited for a team
that a group write held, while the group write waited for that person, deadlocked
(PostgreSQL 40P01): an LDAP run did, locking its people and then inserting memberships whose
foreign-key check waited for the group's team.

Writers about one person lock the teams they will touch before that person: an
invitation's accept its invitation's teams (models.actions.invitations), an IdP event batch
the teams its events join or leave, found once at its start (models.actions.idp_events), a
SCIM user's DELETE, which moves the lastModified of the person's groups, those groups
(scim.lock_scim_user, `leaving`): read before the lock, read again under it and, when the
person joined one meanwhile, the locks let go (a savepoint rolled back) and taken again.

Out of this order still:
- a SCIM create linking an existing person locks them and then the SCIM groups they leave.
  That person has no SCIM user (the create refuses one who has), so no group write's member
  or role change locks them; no deadlock of it with a group write was found. It leaves the
  groups (and moves their lastModified, an UPDATE of the team row) in team-id order, the
  order a DELETE of another member moves the same groups in: in name order the two crossed
  (tests/lifecycle/test_membership_races.py).
- a team a person joins once a DELETE holds them (by a writer that does not lock the person,
  such as an admin's add) is still moved by the DELETE after the person.

SQLite: the clauses are dropped; every transaction there holds the database's write lock from
its start (BEGIN IMMEDIATE, see models.db).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import person_lock
from models.entities import Team, TeamMembership, User
from models.errors import NotFound

BATCH = 500


def lock_teams(
    session: Session,
    team_ids: Iterable[uuid.UUID],
    *,
    whole: bool = False,
    organisation_id: uuid.UUID | None = None,
) -> set[uuid.UUID]:
    """Lock these teams in id order: FOR UPDATE when the caller decides the team as a whole
    (`whole`), else FOR KEY SHARE. The ids found (of `organisation_id` when given)."""
    ordered = sorted(set(team_ids))
    found: set[uuid.UUID] = set()
    for start in range(0, len(ordered), BATCH):
        query = select(Team.id).where(Team.id.in_(ordered[start : start + BATCH]))
        if organisation_id is not None:
            query = query.where(Team.organisation_id == organisation_id)
        query = query.order_by(Team.id).with_for_update(read=not whole, key_share=not whole)
        found.update(session.scalars(query))
    return found


def lock_for_membership_change(
    session: Session,
    *,
    teams: Iterable[uuid.UUID],
    people: Iterable[uuid.UUID] = (),
    whole: bool = False,
) -> dict[uuid.UUID, User]:
    """Lock the teams of a membership change, then the people it decides on, in the order
    above; the people, read after their lock."""
    lock_teams(session, teams, whole=whole)
    return person_lock.lock_people(session, people)


def lock_membership(
    session: Session, team_id: uuid.UUID, user_id: uuid.UUID
) -> TeamMembership | None:
    """A membership about to be changed or removed, locked (its team first, FOR KEY SHARE) and
    read again; None when there is none (or no longer: a removal committed meanwhile).
    NotFound when the team is gone: a deletion committed meanwhile comes first, as serially
    (a membership written for it would fail its foreign key)."""
    if not lock_teams(session, [team_id]):
        raise NotFound("team not found")
    return session.get(
        TeamMembership, (team_id, user_id), with_for_update=True, populate_existing=True
    )
