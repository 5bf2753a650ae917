"""Applying a directory sync plan through the shared user, identity and team operations.

Only users linked to this connector are ever changed; a person found by email whose account
another source manages is reported, not taken over. Creating people (people_import) and team
memberships (memberships) is set-based because a first import can bring in a hundred thousand
of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.ldap.plan import (
    GroupRename,
    Link,
    Plan,
    PlanItem,
    Reactivate,
    Relink,
    Revoke,
    RoleChange,
    TeamRetire,
    Update,
    apply_error,
)
from connectors.ldap.reconcile import retired_teams
from models import audit, membership_locks
from models.actions import access_end, access_reviews
from models.actions import teams as team_actions
from models.actions.identities import link_identity, mark_link_deleted
from models.actions.lifecycle import Outcome, set_active
from models.actions.users import edit_user, hand_on_emails, takes_mapped_role
from models.actor import Actor
from models.directory.bulk_rows import BATCH
from models.directory.memberships import apply_membership_changes, plan_teams
from models.directory.people_import import ImportParts, PeopleImport
from models.entities import DirectoryConnector, IdentityLink, Organisation, User
from models.entities.user import email_key
from models.enums import Role, Source, UserStatus
from models.errors import DomainError, InvalidTransition
from models.queries import directory as queries
from models.queries.directory import MANAGING_SOURCES


@dataclass
class Applied:
    created: int = 0
    updated: int = 0
    revoked: int = 0
    team_added: int = 0
    team_removed: int = 0
    demoted: int = 0
    reactivated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def apply_directory_plan(
    session: Session,
    *,
    connector: DirectoryConnector,
    plan: Plan,
    actor: Actor,
    people: PeopleImport | ImportParts | None = None,
) -> Applied:
    """Carry out a plan; each item that no longer fits the data is reported and skipped.

    `people` is given when the plan's creates were already added while the directory was
    read (in this session's transaction); otherwise they are created here.
    """
    organisation = session.get_one(Organisation, connector.organisation_id)
    applied = Applied()
    if people is None and plan.creates:
        people = PeopleImport(session, organisation=organisation, connector=connector, actor=actor)
        for start in range(0, len(plan.creates), BATCH):
            people.add(plan.creates[start : start + BATCH])
    if people is not None:
        applied.created = people.finish(plan.creates)
        applied.errors.extend(people.errors)
    _follow_groups(session, connector, plan, actor)
    owned = _OwnedLinks(session, connector, plan, plan_teams(session, organisation, plan))
    for link in plan.links:
        _guarded(applied, link, partial(_link, session, connector, link, actor, applied))
    for relink in plan.relinks:
        _guarded(applied, relink, partial(_relink, session, owned, relink, actor, applied))
    handed_on = _hand_on_emails(session, owned, plan.updates, actor, applied)
    for update in plan.updates:
        if handed_on.get(update.external_id) is False:
            continue
        step = partial(
            _update, session, owned, update, actor, applied, update.external_id in handed_on
        )
        _guarded(applied, update, step)
    for back in plan.reactivates:
        _guarded(applied, back, partial(_reactivate, session, owned, back, actor, applied))
    for revoke in plan.revokes:
        _guarded(applied, revoke, partial(_revoke, session, owned, revoke, actor, applied))
    for hold in plan.holds:
        _guarded(applied, hold, partial(_hold, session, owned, hold, actor))
    for role in plan.roles:
        _guarded(applied, role, partial(_set_role, session, owned, role, actor, applied))
    # Retired first: a retired team's memberships go with it, not one by one.
    for retire in plan.team_retires:
        _guarded(applied, retire, partial(_retire, session, organisation, retire, actor))
    # Set-based: a first import adds as many memberships as it creates people (those
    # written with their people are done).
    adds = plan.team_adds
    joined = people.joined(plan.creates) if people is not None else set()
    if joined:
        adds = [item for item in adds if item.external_id not in joined]
    memberships = apply_membership_changes(
        session,
        organisation=organisation,
        connector=connector,
        adds=adds,
        removes=plan.team_removes,
        actor=actor,
        errors=applied.errors,
        created=people.user_ids if people is not None else None,
    )
    applied.team_added += memberships.added + (people.members_added if people else 0)
    applied.team_removed += memberships.removed
    return applied


def revoke_while_held(
    session: Session, *, connector: DirectoryConnector, leavers: list[Revoke], actor: Actor
) -> Applied:
    """Revoke these leavers of a plan that otherwise waits for an admin
    (models.directory.safety.leavers_who_cannot_wait), each as the whole plan would."""
    applied = Applied()
    owned = _OwnedLinks(session, connector, Plan(revokes=leavers), teams=[])
    for revoke in leavers:
        _guarded(applied, revoke, partial(_revoke, session, owned, revoke, actor, applied))
    return applied


RENAME_SOURCE_UNMAPPED = "the old name is no longer mapped"
RENAME_TARGET_MAPPED = "the new name is mapped already; the old name stays mapped"


def _follow_groups(
    session: Session, connector: DirectoryConnector, plan: Plan, actor: Actor
) -> None:
    """Mapping keys follow their groups' renames, and the groups' stable ids this read bound
    are kept (connectors.ldap.group_links); each change audited."""
    teams, roles = dict(connector.group_teams), dict(connector.group_roles)
    ids = dict(connector.group_ids)
    for rename in plan.group_renames:
        _follow_rename(session, connector, rename, teams, roles, ids, actor)
    _bind_group_ids(session, connector, plan, teams, roles, ids, actor)
    connector.group_teams, connector.group_roles = teams, roles


def _follow_rename(
    session: Session,
    connector: DirectoryConnector,
    rename: GroupRename,
    teams: dict[str, str],
    roles: dict[str, str],
    ids: dict[str, str],
    actor: Actor,
) -> None:
    mapped = [mapping for mapping in (teams, roles) if rename.before in mapping]
    if not mapped or rename.after in teams or rename.after in roles:
        _skip_rename(session, connector, rename, teams, roles, actor)
        return
    before = {"group": rename.before, **_mapped_to(teams, roles, rename.before)}
    for mapping in mapped:
        mapping[rename.after] = mapping.pop(rename.before)
    ids[rename.after] = rename.external_id
    ids.pop(rename.before, None)
    after = {"group": rename.after, "id": rename.external_id, "dn": rename.dn}
    _audit_connector(
        session,
        connector,
        actor,
        "directory_connector.group_renamed",
        before=before,
        after={**after, **_mapped_to(teams, roles, rename.after)},
    )


def _skip_rename(
    session: Session,
    connector: DirectoryConnector,
    rename: GroupRename,
    teams: dict[str, str],
    roles: dict[str, str],
    actor: Actor,
) -> None:
    """The admin changed the mapping since the plan was made (a held run approved later):
    their mapping stands, and the trail says why the plan's rename was not followed."""
    taken = rename.after in teams or rename.after in roles
    _audit_connector(
        session,
        connector,
        actor,
        "directory_connector.group_rename_skipped",
        before={"group": rename.before, **_mapped_to(teams, roles, rename.before)},
        after={
            "group": rename.after,
            "id": rename.external_id,
            "dn": rename.dn,
            **_mapped_to(teams, roles, rename.after),
            "reason": RENAME_TARGET_MAPPED if taken else RENAME_SOURCE_UNMAPPED,
        },
    )


def _bind_group_ids(
    session: Session,
    connector: DirectoryConnector,
    plan: Plan,
    teams: dict[str, str],
    roles: dict[str, str],
    followed: dict[str, str],
    actor: Actor,
) -> None:
    """Keep the stable ids this read bound, for the keys still mapped; `followed` is the
    connector's ids after the renames."""
    bound = {**followed, **plan.group_ids}
    bound = {key: value for key, value in bound.items() if key in teams or key in roles}
    if bound != followed:
        _audit_connector(
            session,
            connector,
            actor,
            "directory_connector.group_ids_bound",
            before={"group_ids": followed},
            after={"group_ids": bound},
        )
    connector.group_ids = bound


def _mapped_to(teams: dict[str, str], roles: dict[str, str], key: str) -> dict[str, str]:
    """What a mapping key maps its group to: a team, a role, or both."""
    found = {"team": teams.get(key, ""), "role": roles.get(key, "")}
    return {name: value for name, value in found.items() if value}


def plan_team_retirements(session: Session, *, connector: DirectoryConnector, plan: Plan) -> None:
    """Add to the plan the teams a sync made that no connector of the organisation maps."""
    organisation_id = connector.organisation_id
    plan.team_retires = retired_teams(
        queries.directory_teams(session, organisation_id),
        queries.mapped_team_names(session, organisation_id),
    )


def _retire(session: Session, organisation: Organisation, item: TeamRetire, actor: Actor) -> None:
    team = team_actions.find_team_by_name(session, organisation.id, item.team)
    if team is None or team.external_source is not Source.LDAP:
        return  # deleted or taken over since the plan was made
    team_actions.delete_team(session, team=team, actor=actor)


def _guarded(applied: Applied, item: PlanItem, step: Callable[[], object]) -> None:
    try:
        step()
    except DomainError as exc:
        applied.errors.append(apply_error(item, exc.message))


class _OwnedLinks:
    """The links this connector owns that the plan names, loaded in a few queries, and their
    people locked, all at once in id order (see models.person_lock): a person the run changes
    is changed on their present state, and an admin, SCIM or an IdP event changing them
    meanwhile waits for the run, not the other way round in a circle. The teams whose members
    the plan changes (`teams`) are locked before them, in the order every writer of
    memberships takes (models.membership_locks): a SCIM group write holding one of them and
    waiting for one of these people then never waits for a run that waits for its team."""

    def __init__(
        self,
        session: Session,
        connector: DirectoryConnector,
        plan: Plan,
        teams: list[uuid.UUID],
    ) -> None:
        self.session = session
        self.connector = connector
        wanted = {item.previous_external_id for item in plan.relinks} | {
            item.external_id
            for items in (
                plan.updates,
                plan.reactivates,
                plan.revokes,
                plan.holds,
                plan.roles,
            )
            for item in items
        }
        self.links: dict[str, IdentityLink] = {}
        ordered = sorted(wanted)
        for start in range(0, len(ordered), BATCH):
            for link in session.scalars(
                self._query().where(IdentityLink.external_id.in_(ordered[start : start + BATCH]))
            ):
                self.links[link.external_id] = link
        # With the people the run links by email: locked now, not when linked, once an
        # earlier item may hold the organisation row (models.person_lock).
        linking = {uuid.UUID(item.user_id) for item in plan.links}
        membership_locks.lock_for_membership_change(
            session,
            teams=teams,
            people={link.user_id for link in self.links.values()} | linking,
        )

    def _query(self) -> Any:
        return select(IdentityLink).where(
            IdentityLink.organisation_id == self.connector.organisation_id,
            IdentityLink.source == Source.LDAP,
            IdentityLink.connector_id == self.connector.id,
        )

    def get(self, external_id: str) -> IdentityLink | None:
        """Only links of this connector (links of other sources are never touched)."""
        link = self.links.get(external_id)
        if link is None:
            link = self.session.scalar(self._query().where(IdentityLink.external_id == external_id))
            if link is not None:
                self.links[external_id] = link
        return link


def _link(
    session: Session,
    connector: DirectoryConnector,
    item: Link,
    actor: Actor,
    applied: Applied,
) -> None:
    user = session.get(User, uuid.UUID(item.user_id))
    if user is None or user.organisation_id != connector.organisation_id:
        raise InvalidTransition("the user to link no longer exists")
    others = [
        link
        for link in user.identity_links
        if link.deleted_at is None and link.source in MANAGING_SOURCES
    ]
    if others:
        raise InvalidTransition(f"{user.email} is now managed by {others[0].source.value}")
    link_identity(
        session,
        user=user,
        source=Source.LDAP,
        external_id=item.external_id,
        actor=actor,
        attributes={"dn": item.dn},
        connector_id=connector.id,
    )
    role = Role(item.role) if item.role and takes_mapped_role(user) else None
    edit_user(session, user=user, actor=actor, name=item.name, role=role)
    if item.access_ends_at is not None:  # None: the entry's expiry was hidden from the reader
        _set_end_date(session, user, item.access_ends_at, actor)
    applied.updated += 1


def _relink(
    session: Session, owned: _OwnedLinks, item: Relink, actor: Actor, applied: Applied
) -> None:
    """A re-hire: the person's link moves to the new entry (audited, and reviewed as a change
    of identity); a sync's revocation of them is undone through the lifecycle policy."""
    link = owned.get(item.previous_external_id)
    if link is None or owned.get(item.external_id) is not None:
        raise InvalidTransition(f"{item.email}: the link to relink changed since the plan")
    previous = link.external_id
    before = {"external_id": previous, "dn": link.attributes.get("dn")}
    link.external_id = item.external_id
    attributes = {**link.attributes, "dn": item.dn}
    attributes.pop("access_ends_at", None)
    if item.access_ends_at:
        attributes["access_ends_at"] = item.access_ends_at
    link.attributes = attributes
    link.deleted_at = None
    owned.links[item.external_id] = link
    # The previous entry's end date was the previous contract's: cleared even where the new
    # entry's expiry was hidden from the reader (None).
    _set_end_date(session, link.user, item.access_ends_at, actor)
    audit.record(
        session,
        actor=actor,
        organisation_id=link.organisation_id,
        action="identity.relinked",
        target_type="user",
        target_id=link.user_id,
        before=before,
        after={"external_id": item.external_id, "dn": item.dn, "reason": "re-hire"},
    )
    user = link.user
    edit_user(session, user=user, actor=actor, name=item.name, email=item.email)
    revoked = user.status is UserStatus.REVOKED
    if revoked and set_active(session, user=user, active=True, actor=actor) is Outcome.APPLIED:
        applied.reactivated += 1
    # After the lifecycle's decision: a re-hire it keeps out gets no role from the groups.
    if item.role and user.role is not Role.SUPER_ADMIN and takes_mapped_role(user):
        edit_user(session, user=user, actor=actor, role=Role(item.role))
    access_reviews.review_identity_change(
        session,
        user=user,
        previous_external_id=previous,
        external_id=item.external_id,
        actor=actor,
    )
    applied.updated += 1


def _hand_on_emails(
    session: Session, owned: _OwnedLinks, updates: list[Update], actor: Actor, applied: Applied
) -> dict[str, bool]:
    """The email changes among which an address passes from one person to another, made at
    once (models.actions.users.hand_on_emails); by stable id, whether they were made (when
    refused, each is reported and its update skipped, as one refused alone would be)."""
    changes: dict[str, tuple[Update, User, str]] = {}
    for item in updates:
        link, email = owned.get(item.external_id), item.new("email")
        if link is not None and email is not None:
            changes[item.external_id] = (item, link.user, email)
    given_up = {email_key(user.email): ext for ext, (_, user, _) in changes.items()}
    passed = {
        ext for ext, (_, _, email) in changes.items() if given_up.get(email_key(email), ext) != ext
    }
    passed |= {
        given_up[email_key(email)] for ext, (_, _, email) in changes.items() if ext in passed
    }
    if not passed:
        return {}
    moves = [(changes[ext][1], changes[ext][2]) for ext in sorted(passed)]
    try:
        hand_on_emails(session, moves=moves, actor=actor)
    except DomainError as exc:
        applied.errors.extend(apply_error(changes[ext][0], exc.message) for ext in sorted(passed))
        return dict.fromkeys(passed, False)
    return dict.fromkeys(passed, True)


def _update(
    session: Session,
    owned: _OwnedLinks,
    item: Update,
    actor: Actor,
    applied: Applied,
    email_handed_on: bool = False,
) -> None:
    link = owned.get(item.external_id)
    if link is None:
        return
    name, ends = item.new("name"), item.new("access_ends_at")
    email = None if email_handed_on else item.new("email")
    if name is not None or email is not None:
        edit_user(session, user=link.user, actor=actor, name=name, email=email)
    if item.new("dn") is not None and link.attributes.get("dn") != item.dn:
        audit.record(
            session,
            actor=actor,
            organisation_id=link.organisation_id,
            action="identity.moved",
            target_type="user",
            target_id=link.user_id,
            before={"dn": link.attributes.get("dn")},
            after={"dn": item.dn},
        )
        link.attributes = {**link.attributes, "dn": item.dn}
    if ends is not None:
        _store_access_end(session, link, ends, actor)
    applied.updated += 1


def _store_access_end(session: Session, link: IdentityLink, ends: str, actor: Actor) -> None:
    """The date the directory says access ends: the person's end date (the schedule revokes
    them then), kept on the link as the directory gave it."""
    _set_end_date(session, link.user, ends, actor)
    before = link.attributes.get("access_ends_at") or ""
    if before == ends:
        return
    attributes = {**link.attributes, "access_ends_at": ends}
    if not ends:
        attributes.pop("access_ends_at")
    link.attributes = attributes
    audit.record(
        session,
        actor=actor,
        organisation_id=link.organisation_id,
        action="identity.access_end_changed",
        target_type="user",
        target_id=link.user_id,
        before={"access_ends_at": before or None},
        after={"access_ends_at": ends or None},
    )


def _set_end_date(session: Session, user: User, ends: str | None, actor: Actor) -> None:
    moment = datetime.fromisoformat(ends) if ends else None
    access_end.set_access_end(session, user=user, ends_at=moment, actor=actor)


def _reactivate(
    session: Session, owned: _OwnedLinks, item: Reactivate, actor: Actor, applied: Applied
) -> None:
    link = owned.get(item.external_id)
    if link is None:
        return
    outcome = set_active(session, user=link.user, active=True, actor=actor)
    if outcome is Outcome.APPLIED:
        applied.reactivated += 1
    if outcome is not Outcome.REFUSED and link.deleted_at is not None:
        link.deleted_at = None


def _revoke(
    session: Session, owned: _OwnedLinks, item: Revoke, actor: Actor, applied: Applied
) -> None:
    link = owned.get(item.external_id)
    if link is None:
        return
    outcome = set_active(session, user=link.user, active=False, actor=actor, reason=item.reason)
    if outcome is Outcome.APPLIED:
        applied.revoked += 1
    if item.removed:
        mark_link_deleted(session, link=link, actor=actor)


def _hold(session: Session, owned: _OwnedLinks, item: Revoke, actor: Actor) -> None:
    """Another source revoked the person; the directory says they are inactive too: through
    the policy, it now stands beside that source (audited `user.revocation_joined`)."""
    link = owned.get(item.external_id)
    if link is not None:
        set_active(session, user=link.user, active=False, actor=actor, reason=item.reason)


def _set_role(
    session: Session, owned: _OwnedLinks, item: RoleChange, actor: Actor, applied: Applied
) -> None:
    link = owned.get(item.external_id)
    if link is not None and link.user.role is not Role.SUPER_ADMIN:
        role = Role(item.role)
        if role.rank < link.user.role.rank:
            applied.demoted += 1
        edit_user(session, user=link.user, actor=actor, role=role)


def _audit_connector(
    session: Session,
    connector: DirectoryConnector,
    actor: Actor,
    action: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """An audit event about the connector's group mapping."""
    audit.record_change(
        session,
        actor=actor,
        subject=connector,
        action=action,
        target_type="directory",
        before=before,
        after=after,
    )
