"""Which keys, budgets and quotas a change of access touches, and what policy does to each.

The revocation, the review findings, the review sweep and the blast-radius preview all ask
here, so what a revocation disables, what its review lists and what the preview promises
cannot drift apart. A team deletion, a lost team role and a dropped organisation role are
scoped here too. Nothing here writes: the callers act on the answers.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from models.entities import (
    ApiToken,
    Budget,
    OrganisationSettings,
    Quota,
    TeamMembership,
    User,
    VirtualApiKey,
)
from models.enums import (
    DeletedTeamKeyPolicy,
    KeyPolicy,
    KeyType,
    OwnerType,
    Role,
    TeamRole,
    TokenScope,
    UserStatus,
)

KIND_USER_KEY = "user_key"
KIND_TEAM_KEY = "team_key"
KIND_ORG_KEY = "org_key"
KEY_KINDS = (KIND_USER_KEY, KIND_TEAM_KEY, KIND_ORG_KEY)

# What policy does to an active key in scope.
REVOKE = "revoke"
HOLD = "hold_for_review"
REASSIGN = "reassign"

# The organisation role a person needs to hold a key of this type they created.
ROLE_NEEDED = {KeyType.ORGANISATION: Role.ORG_ADMIN, KeyType.TEAM: Role.MANAGER}


@dataclass(frozen=True)
class KeyGroup:
    """Keys of one finding kind: which ones, and what policy does to those still active."""

    kind: str
    condition: ColumnElement[bool]
    action: str


@dataclass(frozen=True)
class Scope:
    keys: tuple[KeyGroup, ...]
    budgets: ColumnElement[bool]
    quotas: ColumnElement[bool]

    @property
    def any_key(self) -> ColumnElement[bool]:
        return or_(false(), *(group.condition for group in self.keys))

    def to_revoke(self) -> ColumnElement[bool]:
        return or_(false(), *(g.condition for g in self.keys if g.action == REVOKE))


def own_user_keys(user_id: Any) -> ColumnElement[bool]:
    """The person's own keys (`user_id` may be a column, for set-based queries)."""
    return and_(VirtualApiKey.owner_user_id == user_id, VirtualApiKey.key_type == KeyType.USER)


def created_team_keys(user_id: Any) -> ColumnElement[bool]:
    return and_(VirtualApiKey.created_by_user_id == user_id, VirtualApiKey.key_type == KeyType.TEAM)


def created_org_keys(user_id: Any) -> ColumnElement[bool]:
    return and_(
        VirtualApiKey.created_by_user_id == user_id,
        VirtualApiKey.key_type == KeyType.ORGANISATION,
    )


def held_by(user_id: Any) -> ColumnElement[bool]:
    """Every key a revocation of this person touches, whatever the policy."""
    return or_(own_user_keys(user_id), created_team_keys(user_id), created_org_keys(user_id))


def holder() -> ColumnElement[Any]:
    """The person `held_by` counts a key against: a USER key's owner, else its creator."""
    return case(
        (VirtualApiKey.key_type == KeyType.USER, VirtualApiKey.owner_user_id),
        else_=VirtualApiKey.created_by_user_id,
    )


def holder_of(
    key_type: KeyType, owner_user_id: uuid.UUID | None, created_by_user_id: uuid.UUID | None
) -> uuid.UUID | None:
    """`holder` of a key from its values, before it is written (a key pushed by Odock)."""
    return owner_user_id if key_type is KeyType.USER else created_by_user_id


def revocation(settings: OrganisationSettings, user_id: uuid.UUID) -> Scope:
    """A leaver's keys per policy, and the budgets and quotas owned by them or by those keys,
    of the leaver's organisation only: an APIKEY owner is a bare key id, which another
    organisation's budget may name (odock_objects checks it only against keys held now)."""
    their_keys = select(VirtualApiKey.id).where(held_by(user_id))
    return Scope(
        keys=(
            KeyGroup(KIND_USER_KEY, own_user_keys(user_id), _action(settings.user_key_policy)),
            KeyGroup(KIND_TEAM_KEY, created_team_keys(user_id), _action(settings.team_key_policy)),
            KeyGroup(KIND_ORG_KEY, created_org_keys(user_id), _action(settings.org_key_policy)),
        ),
        budgets=and_(
            Budget.organisation_id == settings.organisation_id,
            or_(_owned_by(Budget, OwnerType.USER, user_id), _owned_by_keys(Budget, their_keys)),
        ),
        quotas=and_(
            Quota.organisation_id == settings.organisation_id,
            or_(_owned_by(Quota, OwnerType.USER, user_id), _owned_by_keys(Quota, their_keys)),
        ),
    )


def held_keys_of(people: Collection[uuid.UUID]) -> Select[uuid.UUID, KeyType, int]:
    """`revocation`'s active keys for many people at once (a list of departures): for each
    holder and key type, how many."""
    holder_id = holder().label("holder_id")
    return (
        select(holder_id, VirtualApiKey.key_type, func.count())
        .where(holder().in_(list(people)), VirtualApiKey.revoked.is_(False))
        .group_by(holder_id, VirtualApiKey.key_type)
    )


def owned_of(
    entity: type[Budget] | type[Quota], organisation_id: uuid.UUID, people: Collection[uuid.UUID]
) -> list[Select[uuid.UUID, int]]:
    """`revocation`'s budgets (or quotas) for many people of one organisation at once: for
    each person, how many they own and how many their keys own (one statement each)."""
    ids, in_organisation = list(people), entity.organisation_id == organisation_id
    own = (
        select(entity.owner_id, func.count())
        .where(in_organisation, entity.owner_type == OwnerType.USER, entity.owner_id.in_(ids))
        .group_by(entity.owner_id)
    )
    holder_id = holder().label("holder_id")
    by_keys = (
        select(holder_id, func.count())
        .select_from(entity)
        .join(VirtualApiKey, VirtualApiKey.id == entity.owner_id)
        .where(in_organisation, entity.owner_type == OwnerType.APIKEY, holder().in_(ids))
        .group_by(holder_id)
    )
    return [own, by_keys]


def revoked_at_revocation(organisation_id: Any, user_id: Any) -> ColumnElement[bool]:
    """The keys a revocation disables at once, with the policy read inside the statement (one
    round trip on the hot path); the same groups and policies as `revocation`."""
    return or_(
        and_(own_user_keys(user_id), _policy_is(organisation_id, "user_key_policy")),
        and_(created_team_keys(user_id), _policy_is(organisation_id, "team_key_policy")),
        and_(created_org_keys(user_id), _policy_is(organisation_id, "org_key_policy")),
    )


@functools.cache
def kept_revocation_scope() -> ColumnElement[bool]:
    """`revoked_at_revocation` with the organisation and the person as bound parameters
    (`scope_organisation_id`, `scope_user_id`; not a column's name, which an UPDATE keeps for
    its SET clause), built once per process: building it and the statement around it, and
    their cache key, cost a revocation a millisecond of CPU each time."""
    return revoked_at_revocation(bindparam("scope_organisation_id"), bindparam("scope_user_id"))


def kept_off_for_a_leaver() -> ColumnElement[bool]:
    """The keys a revocation of their holder disables, while that holder is REVOKED: only the
    person's reactivation brings such a key back (with what their revocation disabled), never
    a restore of the key alone. A key a recertification had revoked before the person left was
    not the revocation's to disable, so its restore gave a leaver a working key."""
    holder_id = holder()
    leaver = exists().where(User.id == holder_id, User.status == UserStatus.REVOKED)
    return and_(leaver, revoked_at_revocation(VirtualApiKey.organisation_id, holder_id))


def admin_tokens_of(user_id: uuid.UUID) -> ColumnElement[bool]:
    """The admin-API tokens that act as this person: revoked with them, never brought back."""
    return and_(ApiToken.user_id == user_id, ApiToken.scope == TokenScope.ADMIN)


def _policy_is(organisation_id: Any, setting: str) -> ColumnElement[bool]:
    return exists().where(
        OrganisationSettings.organisation_id == organisation_id,
        getattr(OrganisationSettings, setting) == KeyPolicy.REVOKE,
    )


def _action(policy: KeyPolicy) -> str:
    return REVOKE if policy is KeyPolicy.REVOKE else HOLD


def team_deletion(settings: OrganisationSettings, team_id: uuid.UUID) -> Scope:
    """The team's keys (revoked or handed to their creator, per policy), budgets and quotas."""
    policy = settings.deleted_team_key_policy
    action = REVOKE if policy is DeletedTeamKeyPolicy.REVOKE else REASSIGN
    return Scope(
        keys=(KeyGroup(KIND_TEAM_KEY, team_keys(team_id), action),),
        budgets=and_(
            Budget.organisation_id == settings.organisation_id,
            _owned_by(Budget, OwnerType.TEAM, team_id),
        ),
        quotas=and_(
            Quota.organisation_id == settings.organisation_id,
            _owned_by(Quota, OwnerType.TEAM, team_id),
        ),
    )


def team_keys(team_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(VirtualApiKey.owner_team_id == team_id, VirtualApiKey.key_type == KeyType.TEAM)


def team_role_lost(team_id: uuid.UUID, user_id: uuid.UUID) -> Scope:
    """The team's keys this person created, now that they manage it no more (or left it)."""
    keys = and_(team_keys(team_id), VirtualApiKey.created_by_user_id == user_id)
    return Scope(keys=(KeyGroup(KIND_TEAM_KEY, keys, HOLD),), budgets=false(), quotas=false())


def org_role_dropped(user_id: uuid.UUID, *, before: Role, after: Role) -> Scope:
    """Keys the person created that their new role would not let them hold."""
    groups = []
    if _outranks(before, after, ROLE_NEEDED[KeyType.ORGANISATION]):
        created = VirtualApiKey.created_by_user_id == user_id
        org_keys = and_(created, VirtualApiKey.key_type == KeyType.ORGANISATION)
        groups.append(KeyGroup(KIND_ORG_KEY, org_keys, HOLD))
    if _outranks(before, after, ROLE_NEEDED[KeyType.TEAM]):
        # Still a MANAGER of the key's team: the team role keeps the key theirs to hold.
        managed = select(TeamMembership.team_id).where(
            TeamMembership.user_id == user_id, TeamMembership.role == TeamRole.MANAGER
        )
        keys = and_(
            created_team_keys(user_id),
            or_(VirtualApiKey.owner_team_id.is_(None), VirtualApiKey.owner_team_id.not_in(managed)),
        )
        groups.append(KeyGroup(KIND_TEAM_KEY, keys, HOLD))
    return Scope(keys=tuple(groups), budgets=false(), quotas=false())


def _outranks(before: Role, after: Role, needed: Role) -> bool:
    """`before` was enough for `needed` and `after` is not."""
    return before.rank >= needed.rank > after.rank


def active_keys(session: Session, group: KeyGroup) -> list[VirtualApiKey]:
    query = select(VirtualApiKey).where(group.condition, VirtualApiKey.revoked.is_(False))
    return list(session.scalars(query.order_by(VirtualApiKey.created_at)))


def budgets(session: Session, scope: Scope) -> list[Budget]:
    return list(session.scalars(select(Budget).where(scope.budgets).order_by(Budget.name)))


def quotas(session: Session, scope: Scope) -> list[Quota]:
    return list(session.scalars(select(Quota).where(scope.quotas).order_by(Quota.name)))


def _owned_by(
    entity: type[Budget] | type[Quota], owner_type: OwnerType, owner_id: uuid.UUID
) -> ColumnElement[bool]:
    return and_(entity.owner_type == owner_type, entity.owner_id == owner_id)


def _owned_by_keys(entity: type[Budget] | type[Quota], keys: Select[Any]) -> ColumnElement[bool]:
    return and_(entity.owner_type == OwnerType.APIKEY, entity.owner_id.in_(keys))
