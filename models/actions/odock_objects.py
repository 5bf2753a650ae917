"""Keys, budgets and quotas pushed by Odock's management plane, one object at a time.

Objects keep Odock's ids and versions: an upsert or delete whose version is not newer than
the one held is acknowledged and ignored, and a delete leaves a tombstone so that an older
upsert arriving late does not bring the object back. People are named by id or by email;
one that names nobody in the organisation is refused and nothing changes. The same shapes
serve the push API, the change events, the import and the reconcile (see docs/odock.md).
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
)
from pydantic import StrictInt as _StrictInt
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import audit, key_scope, person_lock, unique_rows
from models.actions import review_sweep
from models.actor import Actor
from models.base import utcnow
from models.entities import Budget, OdockTombstone, Quota, Team, User, VirtualApiKey
from models.entities.user import email_key
from models.enums import KeyType, OwnerType, Source, UserStatus
from models.errors import Conflict, InvalidInput, UnknownReference
from models.key_changes import keep_pending_decisions
from models.numbers import PlainDecimal
from models.odock_references import keys_of_other_organisations

KIND_KEY, KIND_BUDGET, KIND_QUOTA = "key", "budget", "quota"
KINDS = (KIND_KEY, KIND_BUDGET, KIND_QUOTA)
MAX_BIGINT = 2**63 - 1
OBJECT_LOCK = 0x0D0C_0B1E  # the advisory-lock class of one Odock object's writes (two-key form)
ODOCK_ACTOR = Actor(Source.ODOCK, "odock management plane")

StrictInt = Annotated[_StrictInt, Field(ge=0, le=MAX_BIGINT)]


def _storable(value: str) -> str:
    """PostgreSQL stores no NUL in text. The push refuses one in its body (webhooks/body.py);
    the reconcile's listings and the import read their JSON themselves, and a NUL in any text
    of an item ended the whole run when the chunk was copied in (no summary, no audit)."""
    if "\x00" in value:
        raise ValueError("a NUL character, which no text column stores")
    return value


STORABLE = AfterValidator(_storable)
Email = Annotated[StrictStr, Field(min_length=3, max_length=320), STORABLE]
Window = Annotated[StrictStr, Field(min_length=1, max_length=16), STORABLE]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200), STORABLE]


def _in_utc(value: datetime) -> datetime:
    """The time in UTC, as it is stored; one whose UTC form leaves the calendar (year 1 with
    a zone east of UTC, year 9999 west of it) is refused like any other unreadable time."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("a time whose UTC form lies within the years 1 to 9999") from None


# A time with its zone, within what UTC can hold: the push, the events, the import and the
# reconcile all read times through it (a time beyond it failed only when stored: a 500).
Time = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class OdockObject(BaseModel):
    """Base of the contract's objects: unknown fields and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    version: StrictInt


class KeyIn(OdockObject):
    type: KeyType
    name: Name
    masked_value: Annotated[StrictStr, Field(max_length=64), STORABLE] = ""
    owner_user_id: uuid.UUID | None = None
    owner_email: Email | None = None
    owner_team_id: uuid.UUID | None = None
    created_by_user_id: uuid.UUID | None = None
    created_by_email: Email | None = None
    created_at: Time | None = None
    expires_at: Time | None = None
    revoked: StrictBool = False
    revoked_at: Time | None = None
    revealed_by_user_id: uuid.UUID | None = None
    revealed_by_email: Email | None = None
    revealed_at: Time | None = None


class OwnedIn(OdockObject):
    owner_type: OwnerType
    owner_id: uuid.UUID | None = None
    owner_email: Email | None = None
    name: Name
    window: Window


class BudgetIn(OwnedIn):
    amount: Annotated[
        PlainDecimal, Field(ge=0, max_digits=14, decimal_places=4, allow_inf_nan=False)
    ]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    window: Window = "monthly"


class QuotaIn(OwnedIn):
    metric: Literal["requests", "tokens"] = "requests"
    limit: StrictInt
    window: Window = "daily"


SCHEMAS: dict[str, type[OdockObject]] = {
    KIND_KEY: KeyIn,
    KIND_BUDGET: BudgetIn,
    KIND_QUOTA: QuotaIn,
}
ENTITIES: dict[str, type[VirtualApiKey] | type[Budget] | type[Quota]] = {
    KIND_KEY: VirtualApiKey,
    KIND_BUDGET: Budget,
    KIND_QUOTA: Quota,
}
TARGET_TYPES = {KIND_KEY: "api_key", KIND_BUDGET: "budget", KIND_QUOTA: "quota"}
# What names a key's holder (key_scope.holder_of).
HOLDER_COLUMNS = ("key_type", "owner_user_id", "created_by_user_id")


@dataclass(frozen=True)
class Applied:
    """What an upsert or delete did: `applied` is False when it was older than what is held."""

    kind: str
    id: uuid.UUID
    applied: bool
    created: bool = False
    deleted: bool = False


# --- the objects' columns, with the people and teams they name resolved ----------------------


def key_values(session: Session, organisation_id: uuid.UUID, key: KeyIn) -> dict[str, Any]:
    """The key's columns; refuses a person or team that is not in the organisation."""
    refs = References(session, organisation_id)
    values: dict[str, Any] = {
        "key_type": key.type,
        "name": key.name,
        "masked_value": key.masked_value,
        "owner_user_id": refs.user(key.owner_user_id, key.owner_email, "owner"),
        "owner_team_id": refs.team(key.owner_team_id, "owner_team_id"),
        "created_by_user_id": refs.user(key.created_by_user_id, key.created_by_email, "created_by"),
        "expires_at": key.expires_at,
        "revoked": key.revoked,
        "revoked_at": key.revoked_at if key.revoked else None,
        "revealed_by_user_id": refs.user(
            key.revealed_by_user_id, key.revealed_by_email, "revealed_by"
        ),
        "revealed_at": key.revealed_at,
        "version": key.version,
    }
    if key.type is KeyType.USER and values["owner_user_id"] is None:
        raise InvalidInput("a USER key names its owner", field="owner_user_id")
    if key.type is KeyType.TEAM and values["owner_team_id"] is None:
        raise InvalidInput("a TEAM key names its team", field="owner_team_id")
    if key.created_at is not None:
        values["created_at"] = key.created_at
    return values


def owned_values(
    session: Session, organisation_id: uuid.UUID, owned: BudgetIn | QuotaIn
) -> dict[str, Any]:
    """A budget's or quota's columns; its owner must exist here (an API key owner is Odock's
    key id, which may arrive after its budget: only a key of another organisation is refused)."""
    values = owned.model_dump(exclude={"owner_email"})
    values["owner_id"] = _owner_id(References(session, organisation_id), organisation_id, owned)
    return values


def _owner_id(refs: References, organisation_id: uuid.UUID, owned: BudgetIn | QuotaIn) -> uuid.UUID:
    if owned.owner_type is OwnerType.USER:
        owner = refs.user(owned.owner_id, owned.owner_email, "owner")
    elif owned.owner_email is not None:
        raise InvalidInput("owner_email names a USER owner only", field="owner_email")
    elif owned.owner_type is OwnerType.TEAM:
        owner = refs.team(owned.owner_id, "owner_id")
    elif owned.owner_type is OwnerType.ORG:
        owner = owned.owner_id or organisation_id
        if owner != organisation_id:
            raise UnknownReference("an ORG owner is this organisation", field="owner_id")
    else:
        owner = refs.key(owned.owner_id, "owner_id")
    if owner is None:
        raise InvalidInput("owner_id is required", field="owner_id")
    return owner


class References:
    """Checks that the people, teams and keys an object names belong to the organisation."""

    def __init__(self, session: Session, organisation_id: uuid.UUID) -> None:
        self.session, self.organisation_id = session, organisation_id

    def user(self, user_id: uuid.UUID | None, email: str | None, field: str) -> uuid.UUID | None:
        if user_id is not None and email is not None:
            raise InvalidInput(f"give {field}'s id or email, not both", field=field)
        if user_id is not None:
            found = self.session.scalar(
                select(User.id).where(
                    User.id == user_id, User.organisation_id == self.organisation_id
                )
            )
            if found is None:
                raise UnknownReference(f"no user {user_id} in this organisation", field=field)
            return found
        if email is not None:
            found = self.session.scalar(
                select(User.id).where(
                    User.organisation_id == self.organisation_id, User.email_key == email_key(email)
                )
            )
            if found is None:
                raise UnknownReference(
                    f"no user with email {email} in this organisation", field=field
                )
            return found
        return None

    def team(self, team_id: uuid.UUID | None, field: str) -> uuid.UUID | None:
        if team_id is None:
            return None
        found = self.session.scalar(
            select(Team.id).where(Team.id == team_id, Team.organisation_id == self.organisation_id)
        )
        if found is None:
            raise UnknownReference(f"no team {team_id} in this organisation", field=field)
        return found

    def key(self, key_id: uuid.UUID | None, field: str) -> uuid.UUID | None:
        """A key id, by models.odock_references' rule: unknown is fine (Odock may push a key
        after its budget), but a key of another organisation is not this one's to own anything."""
        if key_id is None:
            return None
        if keys_of_other_organisations(self.session, self.organisation_id, [key_id]):
            raise UnknownReference(no_key_here(key_id), field=field)
        return key_id


def no_key_here(key_id: uuid.UUID) -> str:
    """Why a key id is refused, in the push's answer and in a bulk load's summary alike."""
    return f"no key {key_id} in this organisation"


# --- upserts and deletes --------------------------------------------------------------------


def upsert_key(
    session: Session, *, organisation_id: uuid.UUID, key_id: uuid.UUID, key: KeyIn, actor: Actor
) -> Applied:
    """A key from Odock. One held by a person revoked here goes to their review at once
    (review_sweep.review_keys_of_leavers): a key made for a leaver, or arriving while they
    are revoked, is revoked or held by the key policy now, not at the next review sweep. The
    caller asks again once this transaction has committed (a revocation committing meanwhile
    did not see the key)."""
    # The key before its holder: a drain batch locks its events' keys and leavers in event
    # order, and a push that held the leaver while it waited for the key waited in a circle.
    _lock_object(session, key_id)
    values = keep_pending_decisions(session, key_id, key_values(session, organisation_id, key))
    leaver = _revoked_holder(session, organisation_id, key_id, values)
    applied = upsert(session, KIND_KEY, organisation_id, key_id, values, actor, locked=True)
    if leaver and applied.applied:  # the review looks only at the key if it is active here
        review_sweep.review_keys_of_leavers(
            session, organisation_id=organisation_id, actor=actor, key_ids=[key_id]
        )
    return applied


def _revoked_holder(
    session: Session, organisation_id: uuid.UUID, key_id: uuid.UUID, values: dict[str, Any]
) -> bool:
    """Whether the key's holder (key_scope.holder_of), as the key will be once written (a
    column a pending command decides keeps its held value), is REVOKED; if so they are
    locked before the key is written, as a revocation locks its person before it reads their
    keys, so a reactivation at the same moment is not undone by the review. Anyone else is
    not locked: a key push never waits on a person's change. A revocation committing while
    this key is written is caught after the commit (review_sweep.review_keys_of_leavers,
    called again by the caller)."""
    held = _held(session, VirtualApiKey, organisation_id, key_id)
    kept = {name: getattr(held, name) for name in HOLDER_COLUMNS} if held is not None else {}
    key = {**kept, **values}
    holder = key_scope.holder_of(
        key["key_type"], key.get("owner_user_id"), key.get("created_by_user_id")
    )
    if holder is None or session.scalar(select(User.status).where(User.id == holder)) != (
        UserStatus.REVOKED
    ):
        return False
    person_lock.lock_people(session, [holder])
    return True


def upsert_budget(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    budget_id: uuid.UUID,
    budget: BudgetIn,
    actor: Actor,
) -> Applied:
    values = owned_values(session, organisation_id, budget)
    return upsert(session, KIND_BUDGET, organisation_id, budget_id, values, actor)


def upsert_quota(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    quota_id: uuid.UUID,
    quota: QuotaIn,
    actor: Actor,
) -> Applied:
    values = owned_values(session, organisation_id, quota)
    return upsert(session, KIND_QUOTA, organisation_id, quota_id, values, actor)


def upsert_object(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    kind: str,
    object_id: uuid.UUID,
    data: OdockObject,
    actor: Actor,
) -> Applied:
    """Any of the three, by kind (for events and the demo)."""
    if isinstance(data, KeyIn):
        return upsert_key(
            session, organisation_id=organisation_id, key_id=object_id, key=data, actor=actor
        )
    assert isinstance(data, BudgetIn | QuotaIn) and kind in (KIND_BUDGET, KIND_QUOTA)
    values = owned_values(session, organisation_id, data)
    return upsert(session, kind, organisation_id, object_id, values, actor)


# A newer object from Odock is its word that the object exists: no longer unseen by listings.
SEEN = {"unseen_since": None, "unseen_listings": 0}


def upsert(
    session: Session,
    kind: str,
    organisation_id: uuid.UUID,
    object_id: uuid.UUID,
    values: dict[str, Any],
    actor: Actor,
    *,
    locked: bool = False,
) -> Applied:
    """Create or update the object unless what is held (or its tombstone) is as new; `locked`
    when the caller holds the object's lock already (_lock_object)."""
    version = values["version"]
    if not locked:
        _lock_object(session, object_id)
    if buried_at(session, organisation_id, kind, object_id) >= version:
        return Applied(kind, object_id, applied=False)
    entity = ENTITIES[kind]
    held = _held(session, entity, organisation_id, object_id)
    if held is not None:
        if held.version >= version:
            return Applied(kind, object_id, applied=False)
        _update(session, kind, held, {**values, **SEEN}, actor)
        return Applied(kind, object_id, applied=True)
    try:
        with session.begin_nested():
            created = entity(id=object_id, organisation_id=organisation_id, **values)
            session.add(created)
            session.flush()
    except IntegrityError:
        # Created meanwhile by a concurrent push of the same object: compare with that one.
        return upsert(session, kind, organisation_id, object_id, values, actor, locked=True)
    audit.record_change(
        session,
        actor=actor,
        subject=created,
        action=f"odock.{kind}.created",
        target_type=TARGET_TYPES[kind],
        after=_jsonable(values),
    )
    return Applied(kind, object_id, applied=True, created=True)


def _update(session: Session, kind: str, held: Any, values: dict[str, Any], actor: Actor) -> None:
    changed = {name: value for name, value in values.items() if getattr(held, name) != value}
    before = {name: getattr(held, name) for name in changed}
    for name, value in changed.items():
        setattr(held, name, value)
    held.updated_at = utcnow()  # the reconcile spares objects touched while it runs
    audit.record_change(
        session,
        actor=actor,
        subject=held,
        action=f"odock.{kind}.updated",
        target_type=TARGET_TYPES[kind],
        before=_jsonable(before),
        after=_jsonable(changed),
    )


def delete_object(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    kind: str,
    object_id: uuid.UUID,
    version: int,
    actor: Actor,
) -> Applied:
    """Delete the object and leave a tombstone; unknown objects get a tombstone too."""
    _lock_object(session, object_id)
    if buried_at(session, organisation_id, kind, object_id) >= version:
        return Applied(kind, object_id, applied=False)
    held = _held(session, ENTITIES[kind], organisation_id, object_id)
    if held is not None and held.version >= version:
        return Applied(kind, object_id, applied=False)
    bury(session, organisation_id, kind, object_id, version)
    if held is not None:
        audit.record_change(
            session,
            actor=actor,
            subject=held,
            action=f"odock.{kind}.deleted",
            target_type=TARGET_TYPES[kind],
            before=_jsonable(describe(held)),
            after={"version": version},
        )
        session.delete(held)
        session.flush()
    return Applied(kind, object_id, applied=True, deleted=held is not None)


def _lock_object(session: Session, object_id: uuid.UUID) -> None:
    """Writes of one object wait for each other until commit, so that they compose as if one
    came after the other. The rows cannot be locked instead: a push of an object this side
    does not hold and a delete (which writes only a tombstone) find no row to lock, and a push
    that read no tombstone before a newer delete committed would bring the object back."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite runs one writer at a time (BEGIN IMMEDIATE, models.db)
    crc = zlib.crc32(object_id.bytes)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:kind, :object)"),
        {"kind": OBJECT_LOCK, "object": crc - (1 << 32) if crc >= 1 << 31 else crc},
    )


def held_object(session: Session, kind: str, object_id: uuid.UUID) -> Any:
    return session.get(ENTITIES[kind], object_id)


def parse_version(raw: str | None) -> int:
    """A delete's `version` query parameter: a whole number, required."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidInput("version must be a whole number", field="version")
    version = int(raw)
    if version > MAX_BIGINT:
        raise InvalidInput("version is too large", field="version")
    return version


def _held(session: Session, entity: Any, organisation_id: uuid.UUID, object_id: uuid.UUID) -> Any:
    held = session.get(entity, object_id, with_for_update=True, populate_existing=True)
    if held is not None and held.organisation_id != organisation_id:
        raise Conflict(f"{object_id} belongs to another organisation")
    return held


def buried_at(session: Session, organisation_id: uuid.UUID, kind: str, object_id: uuid.UUID) -> int:
    """The version the object was deleted at, or -1 when it never was."""
    version = session.scalar(
        select(OdockTombstone.version).where(
            OdockTombstone.organisation_id == organisation_id,
            OdockTombstone.kind == kind,
            OdockTombstone.object_id == object_id,
        )
    )
    return -1 if version is None else version


def bury(
    session: Session, organisation_id: uuid.UUID, kind: str, object_id: uuid.UUID, version: int
) -> None:
    # Two deletes of an object this side never had, at once: the later moves the tombstone.
    tombstone, created = unique_rows.insert_or_find(
        session,
        OdockTombstone,
        {"organisation_id": organisation_id, "kind": kind, "object_id": object_id},
        {"version": version},
        lock=True,
    )
    if not created:
        tombstone.version = max(tombstone.version, version)
        tombstone.deleted_at = utcnow()


TOMBSTONE_PURGE_ACTOR = Actor.schedule("odock tombstone purge")


def purge_tombstones(session: Session, *, older_than: datetime) -> int:
    """Forget the deletions made before `older_than` (one audit event per organisation); how
    many tombstones went. Past the retention no late push or event is expected to arrive."""
    gone = session.execute(
        delete(OdockTombstone)
        .where(OdockTombstone.deleted_at < older_than)
        .returning(OdockTombstone.organisation_id)
        .execution_options(synchronize_session=False)
    ).scalars()
    per_organisation = Counter(gone)
    for organisation_id, count in sorted(per_organisation.items()):
        audit.record(
            session,
            actor=TOMBSTONE_PURGE_ACTOR,
            organisation_id=organisation_id,
            action="odock.tombstones_purged",
            target_type="organisation",
            target_id=organisation_id,
            after={"purged": count, "deleted_before": older_than.isoformat()},
        )
    return sum(per_organisation.values())


# --- how objects are shown ---------------------------------------------------------------------


def describe(held: Any) -> dict[str, Any]:
    """An object as the push API answers it."""
    if isinstance(held, VirtualApiKey):
        return describe_key(held)
    fields = ["owner_type", "owner_id", "name", "window", "version"]
    fields += ["amount", "currency"] if isinstance(held, Budget) else ["metric", "limit"]
    return _jsonable({"id": held.id, **{name: getattr(held, name) for name in fields}})


def describe_key(key: VirtualApiKey) -> dict[str, Any]:
    return _jsonable(
        {
            "id": key.id,
            "type": key.key_type,
            "name": key.name,
            "masked_value": key.masked_value,
            "owner_user_id": key.owner_user_id,
            "owner_team_id": key.owner_team_id,
            "created_by_user_id": key.created_by_user_id,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
            "revoked": key.revoked,
            "revoked_at": key.revoked_at,
            "revealed_by_user_id": key.revealed_by_user_id,
            "revealed_at": key.revealed_at,
            "version": key.version,
        }
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
