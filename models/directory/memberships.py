"""Team memberships a directory plan adds and removes, applied set-based per team.

A first import puts a hundred thousand people in their teams: one membership at a time cost
a lookup, an insert and an audit row each, through the ORM. Here each team's members are
resolved from the connector's identity links and inserted by one `INSERT ... SELECT ... ON
CONFLICT DO NOTHING` per batch of 2,000 (an existing membership is left as it is). Every
change still gets its own audit event, as `add_to_team` and `remove_from_team` write them
(`team.member_added` / `team.member_removed`, target the team, the membership before and
after), inserted in bulk.
People the same transaction has just created (a first import) are nobody's members yet and
their user ids are known: their memberships are written directly, one `COPY` (PostgreSQL) or
`executemany` (SQLite) per team and batch, without resolving the identity links or checking
for a conflict, and their audit rows' JSON is formatted rather than serialised. Those written
with their people's batch (`NewMembers`, beside the batch's `user.created` event of target
type `user_batch`) get one `team.member_added` event per team and batch instead, of target
type `membership_batch`, as the people have one per batch: see `NewMembers`.
A membership someone else added is left alone, and only memberships the directory added are
removed; a removal opens the same access review (`left_team`) as `remove_from_team`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, literal, select
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan, TeamAdd, TeamRemove, apply_error
from connectors.ldap.reconcile import TeamIndex
from connectors.name_keys import name_key
from models import membership_locks
from models.actions import access_reviews
from models.actions import teams as team_actions
from models.actor import Actor
from models.base import utcnow
from models.db import conflict_insert
from models.directory.bulk_rows import BATCH, Rows, dashed, fast_ids, table_of
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    IdentityLink,
    Organisation,
    Team,
    TeamMembership,
    User,
)
from models.enums import ReviewCause, Source, TeamRole
from models.errors import DomainError

Change = TypeVar("Change", TeamAdd, TeamRemove)


@dataclass
class MembershipChanges:
    added: int = 0
    removed: int = 0


def apply_membership_changes(
    session: Session,
    *,
    organisation: Organisation,
    connector: DirectoryConnector,
    adds: list[TeamAdd],
    removes: list[TeamRemove],
    actor: Actor,
    errors: list[dict[str, Any]],
    created: Mapping[str, str] | None = None,
) -> MembershipChanges:
    """Add and remove the plan's memberships team by team; a team that cannot be made is
    reported in `errors` with its people left out. `created` maps the stable ids of the
    people this transaction created to their user ids (32 hex digits)."""
    writer = _Writer(session, organisation, connector, actor, created or {})
    adding = [
        (team, items)
        for name, items in _by_team(adds).items()
        if (team := _team_made(session, organisation, name, actor, errors)) is not None
    ]
    removing = [
        (team, gone)
        for name, gone in _by_team(removes).items()
        if (team := team_actions.find_team_by_name(session, organisation.id, name)) is not None
    ]
    # Held since the run's start (plan_teams), but for a team that appeared since: locked
    # before its rows are written, or an insert's foreign-key check would wait for a SCIM
    # group write with the row in flight, which that write's own insert waits for.
    membership_locks.lock_teams(session, [team.id for team, _ in (*adding, *removing)])
    for team, items in adding:
        for chunk in _chunks(items):
            writer.add(team, chunk)
    for team, gone in removing:
        for removed in _chunks(gone):
            writer.remove(team, removed)
    return writer.changes


def plan_teams(session: Session, organisation: Organisation, plan: Plan) -> list[uuid.UUID]:
    """The existing teams whose members the plan adds or removes, for the run to lock first
    (models.membership_locks)."""
    named = [item.team for item in plan.team_adds] + [item.team for item in plan.team_removes]
    keys = sorted({name_key(name.strip()) for name in named})
    found: list[uuid.UUID] = []
    for start in range(0, len(keys), BATCH):
        found.extend(
            session.scalars(
                select(Team.id).where(
                    Team.organisation_id == organisation.id,
                    Team.name_key.in_(keys[start : start + BATCH]),
                )
            )
        )
    return found


def make_teams(
    session: Session, *, organisation: Organisation, names: list[str], actor: Actor
) -> None:
    """The teams of these names, made (audited) where missing. One that cannot be made is
    left out: whoever adds members to it reports that."""
    for name in names:
        _team_made(session, organisation, name, actor, errors=[])


def _team_made(
    session: Session,
    organisation: Organisation,
    name: str,
    actor: Actor,
    errors: list[dict[str, Any]],
) -> Team | None:
    """The team of that name, made (audited) when missing; None, reported, when it cannot be."""
    team = team_actions.find_team_by_name(session, organisation.id, name)
    if team is not None:
        return team
    try:
        return team_actions.create_team(
            session,
            organisation=organisation,
            name=name,
            actor=actor,
            external_source=Source.LDAP,
            external_id=None,
        )
    except DomainError as exc:
        errors.append(apply_error(None, f"team {name}: {exc.message}"))
        return None


class NewMembers:
    """The memberships of people an import creates, written with them.

    With the groups read before the people, the teams of each person are known when they are
    created (`TeamIndex`, as plan_groups will decide them): each batch's memberships go in
    with its users, one COPY for the memberships and one for their audit events. As the
    batch's people have one `user.created` event (target type `user_batch`), their
    memberships have one `team.member_added` event per team and batch: target type
    `membership_batch`, target id the team's, `after` the team's id, the count, the identity
    (source and connector, as `user_batch` has it) and `members`, each added user's id and
    role. A person taken back before the end takes their memberships with them, and is taken
    off those events (an event left with nobody goes).
    """

    def __init__(
        self,
        session: Session,
        *,
        organisation: Organisation,
        connector: DirectoryConnector,
        actor: Actor,
        teams: TeamIndex,
        errors: list[dict[str, Any]],
    ) -> None:
        self.session = session
        self.organisation = organisation
        self.actor = actor
        self.identity = json.dumps({"source": Source.LDAP.value, "connector_id": str(connector.id)})
        self.events: list[uuid.UUID] = []  # the membership_batch events written
        self.index: TeamIndex | None = teams
        self.errors = errors
        # team key -> the team's id as a row takes it and as an event names it; None when
        # the team could not be made
        self.teams: dict[str, tuple[str, str] | None] = {}
        self.added = 0

    def of(self, dn: str, dn_key: str = "") -> tuple[str, ...]:
        """The keys of the teams the person with this DN (normalised: `dn_key`) joins."""
        assert self.index is not None, "asked after the import finished"
        return self.index.teams_of(dn, dn_key)

    def write(self, members: list[tuple[str, str, str]]) -> None:
        """(team key, user id as 32 hex digits, the same as a UUID's text) of people just
        written."""
        rows: list[tuple[str, ...]] = []
        by_team: dict[str, list[str]] = {}  # team id (as an event names it) -> members' JSON
        tail = _MEMBER_JSON_TAIL.format(role=TeamRole.MEMBER.value)
        teams = self.teams
        for key, user_id, shown in members:
            team = teams[key] if key in teams else self._team(key)
            if team is None:
                continue
            row_id, target = team
            rows.append((row_id, user_id))
            by_team.setdefault(target, []).append(_MEMBER_JSON_HEAD + shown + tail)
        if not rows:
            return
        dialect = self.session.get_bind().dialect
        Rows.of(
            dialect,
            table_of(TeamMembership),
            ("team_id", "user_id"),
            rows,
            {"role": TeamRole.MEMBER, "source": Source.LDAP},
            stamped=("created_at",),
        ).write(self.session)
        events = []
        for target, listed in by_team.items():
            after = (
                f'{{"team_id": "{target}", "count": {len(listed)}, '
                f'"identity": {self.identity}, "members": [{", ".join(listed)}]}}'
            )
            events.append((target, after))
        ids = _audit_rows(
            self.session,
            self.organisation,
            self.actor,
            "team.member_added",
            events,
            target_type=MEMBERSHIP_BATCH,
        )
        self.events.extend(uuid.UUID(event_id) for event_id in ids)
        self.added += len(rows)

    def _team(self, key: str) -> tuple[str, str] | None:
        if key not in self.teams:
            assert self.index is not None
            name = self.index.names[key]
            team = _team_made(self.session, self.organisation, name, self.actor, self.errors)
            self.teams[key] = (team.id.hex, str(team.id)) if team is not None else None
        return self.teams[key]

    def withdraw(self, user_ids: list[uuid.UUID]) -> None:
        """Take back the memberships of people whose creation is taken back, and take them
        off their batches' events (an event left with nobody goes)."""
        gone = self.session.execute(
            delete(TeamMembership)
            .where(TeamMembership.user_id.in_(user_ids))
            .returning(TeamMembership.team_id)
            .execution_options(synchronize_session=False)
        ).all()
        if not gone:
            return
        self.added -= len(gone)
        removed = {str(user_id) for user_id in user_ids}
        teams = {str(row.team_id) for row in gone}
        for event in self.session.scalars(
            select(AuditEvent).where(
                AuditEvent.id.in_(self.events), AuditEvent.target_id.in_(teams)
            )
        ):
            assert event.after is not None
            listed = event.after["members"]
            members = [member for member in listed if member["user_id"] not in removed]
            if not members:
                self.session.delete(event)
                self.events.remove(event.id)
            elif len(members) != len(listed):
                event.after = {**event.after, "count": len(members), "members": members}
        self.session.flush()

    def finish(self) -> None:
        self.index = None  # some megabytes at a hundred thousand people


class _Writer:
    def __init__(
        self,
        session: Session,
        organisation: Organisation,
        connector: DirectoryConnector,
        actor: Actor,
        created: Mapping[str, str],
    ) -> None:
        self.session = session
        self.created = created
        self.dialect = session.get_bind().dialect
        self.organisation = organisation
        self.connector = connector
        self.actor = actor
        self.changes = MembershipChanges()

    def _users(self, external_ids: list[str]) -> dict[uuid.UUID, str]:
        """The users this connector links to these stable ids: user id -> stable id."""
        rows = self.session.execute(
            select(IdentityLink.user_id, IdentityLink.external_id).where(
                IdentityLink.organisation_id == self.organisation.id,
                IdentityLink.source == Source.LDAP,
                IdentityLink.connector_id == self.connector.id,
                IdentityLink.external_id.in_(external_ids),
            )
        )
        return {row.user_id: row.external_id for row in rows}

    def add(self, team: Team, items: list[TeamAdd]) -> None:
        by_role: dict[TeamRole, list[str]] = {}
        new_by_role: dict[TeamRole, list[str]] = {}
        for item in items:
            user_id = self.created.get(item.external_id)
            if user_id is None:
                by_role.setdefault(TeamRole(item.role), []).append(item.external_id)
            else:
                new_by_role.setdefault(TeamRole(item.role), []).append(user_id)
        for role, user_ids in new_by_role.items():
            self._write_new(team, role, user_ids)
        for role, external_ids in by_role.items():
            added = self._insert(team, role, external_ids)
            if added:
                states = [_snapshot(team.id, user_id, role) for user_id in added]
                self._audit(team, "team.member_added", "after", states)
                self.changes.added += len(added)

    def _write_new(self, team: Team, role: TeamRole, user_ids: list[str]) -> None:
        """Memberships of users created in this transaction: none can exist yet, so they are
        written as they are, with one `team.member_added` event each."""
        Rows.of(
            self.dialect,
            table_of(TeamMembership),
            ("user_id",),
            [(user_id,) for user_id in user_ids],
            {"team_id": team.id, "role": role, "source": Source.LDAP},
            stamped=("created_at",),
        ).write(self.session)
        target = str(team.id)
        after = [(target, _added_json(team.id, user_id, role)) for user_id in user_ids]
        _audit_rows(self.session, self.organisation, self.actor, "team.member_added", after)
        self.changes.added += len(user_ids)

    def _insert(self, team: Team, role: TeamRole, external_ids: list[str]) -> list[uuid.UUID]:
        """One statement: the linked users of these ids join the team; a membership that
        exists (an admin's, or one already there) is left as it is."""
        columns = TeamMembership.__table__.c
        users = select(
            literal(team.id, columns.team_id.type),
            IdentityLink.user_id,
            literal(role, columns.role.type),
            literal(Source.LDAP, columns.source.type),
            literal(utcnow(), columns.created_at.type),
        ).where(
            IdentityLink.organisation_id == self.organisation.id,
            IdentityLink.source == Source.LDAP,
            IdentityLink.connector_id == self.connector.id,
            IdentityLink.external_id.in_(external_ids),
        )
        upsert = conflict_insert(self.dialect.name)
        inserted = self.session.execute(
            upsert(TeamMembership)
            .from_select(["team_id", "user_id", "role", "source", "created_at"], users)
            .on_conflict_do_nothing(index_elements=["team_id", "user_id"])
            .returning(TeamMembership.user_id)
        )
        return list(inserted.scalars())

    def remove(self, team: Team, items: list[TeamRemove]) -> None:
        users = self._users([item.external_id for item in items])
        if not users:
            return
        removed = list(
            self.session.execute(
                delete(TeamMembership)
                .where(
                    TeamMembership.team_id == team.id,
                    TeamMembership.user_id.in_(list(users)),
                    TeamMembership.source == Source.LDAP,  # only what the directory added
                )
                .returning(TeamMembership.user_id, TeamMembership.role)
                .execution_options(synchronize_session=False)
            )
        )
        if not removed:
            return
        self._audit(
            team,
            "team.member_removed",
            "before",
            [_snapshot(team.id, row.user_id, row.role) for row in removed],
        )
        self.changes.removed += len(removed)
        # Every one of them: whether a revoked person's review already lists these keys is
        # the review's rule (access_reviews.review_team_role_lost), not this import's.
        for user in self.session.scalars(
            select(User).where(User.id.in_([row.user_id for row in removed]))
        ):
            access_reviews.review_team_role_lost(
                self.session, team=team, user=user, cause=ReviewCause.LEFT_TEAM, actor=self.actor
            )

    def _audit(self, team: Team, action: str, side: str, states: list[dict[str, str]]) -> None:
        """One audit event per change, as the one-at-a-time operations write them: the
        membership after an add (`side` "after"), before a removal ("before")."""
        target = str(team.id)
        rows = [(target, json.dumps(state)) for state in states]
        _audit_rows(self.session, self.organisation, self.actor, action, rows, side=side)


def _audit_rows(
    session: Session,
    organisation: Organisation,
    actor: Actor,
    action: str,
    rows: list[tuple[str, str]],
    *,
    side: str = "after",
    target_type: str = "team",
) -> list[str]:
    """Membership events in bulk: (team id, the membership's JSON) for each; their ids."""
    ids = fast_ids(len(rows))
    other = "before" if side == "after" else "after"
    Rows.of(
        session.get_bind().dialect,
        table_of(AuditEvent),
        ("id", "target_id", side),
        [(event_id, target, state) for event_id, (target, state) in zip(ids, rows, strict=True)],
        {
            "organisation_id": organisation.id,
            "occurred_at": utcnow(),
            "source": actor.source,
            "actor": str(actor),
            "action": action,
            "target_type": target_type,
            other: None,
        },
    ).write(session)
    return ids


# The target type of a first import's membership events, one per team and batch of people.
MEMBERSHIP_BATCH = "membership_batch"
# One of a membership_batch event's `members`, formatted as json.dumps would give it.
_MEMBER_JSON_HEAD = '{"user_id": "'
_MEMBER_JSON_TAIL = '", "role": "{role}"}}'
# What json.dumps(_snapshot(...)) gives, formatted: the ids are hex digits, the role a name.
_ADDED_JSON_HEAD = '{{"team_id": "{team_id}", "user_id": "'
_ADDED_JSON_TAIL = '", "role": "{role}"}}'


def _added_json(team_id: uuid.UUID, user_id: str, role: TeamRole) -> str:
    """The event JSON of a membership added (user id as 32 hex digits)."""
    head = _ADDED_JSON_HEAD.format(team_id=team_id)
    return head + dashed(user_id) + _ADDED_JSON_TAIL.format(role=TeamRole(role).value)


def _snapshot(team_id: uuid.UUID, user_id: uuid.UUID, role: TeamRole) -> dict[str, str]:
    """models.snapshots.membership_snapshot, from the values rather than the row."""
    return {"team_id": str(team_id), "user_id": str(user_id), "role": TeamRole(role).value}


def _by_team(items: list[Change]) -> dict[str, list[Change]]:
    """Items grouped by team, case-insensitively, under the first spelling met."""
    names: dict[str, str] = {}
    grouped: dict[str, list[Change]] = {}
    for item in items:
        name = names.setdefault(name_key(item.team.strip()), item.team)
        grouped.setdefault(name, []).append(item)
    return grouped


def _chunks(items: list[Change]) -> Iterator[list[Change]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
