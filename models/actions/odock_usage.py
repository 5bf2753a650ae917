"""Usage pushed by Odock: stored once per record id, and checked at once against revocations.

Usage by a revoked person, or on a key they held, after their revocation is the urgent case
of a revocation review: the records of a batch that name such a person or key refresh that
review straight away (the finding and its alert come from models.actions.reviews).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from models import audit
from models.actions import review_sweep, reviews
from models.actions.odock_objects import STORABLE, StrictInt, Time
from models.actor import Actor
from models.base import new_id
from models.db import conflict_insert
from models.entities import Team, UsageRecord, User
from models.errors import InvalidInput, UnknownReference
from models.numbers import PlainDecimal
from models.odock_references import held_elsewhere, keys_of_other_organisations

MAX_RECORDS = 5_000


class UsageIn(BaseModel):
    """A usage record, or a per-key per-minute aggregate (`requests` counts the calls)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    id: Annotated[StrictStr, Field(min_length=1, max_length=128), STORABLE]
    occurred_at: Time
    api_key_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    model: Annotated[StrictStr, Field(max_length=100), STORABLE] = ""
    input_tokens: StrictInt = 0
    output_tokens: StrictInt = 0
    cost: Annotated[
        PlainDecimal, Field(ge=0, max_digits=14, decimal_places=6, allow_inf_nan=False)
    ] = Decimal(0)
    requests: StrictInt = 1


class UsageBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    records: Annotated[list[UsageIn], Field(min_length=1, max_length=MAX_RECORDS)]


def parse_batch(payload: Any) -> UsageBatch:
    """The batch, refused whole (before any record is read) when it is too long."""
    records = payload.get("records") if isinstance(payload, dict) else None
    if isinstance(records, list) and len(records) > MAX_RECORDS:
        raise InvalidInput(f"at most {MAX_RECORDS} records per batch", field="records")
    return UsageBatch.model_validate(payload)


@dataclass(frozen=True)
class Ingested:
    accepted: int
    duplicates: int
    reviews_refreshed: int


def ingest_usage(
    session: Session, *, organisation_id: uuid.UUID, records: list[UsageIn], actor: Actor
) -> Ingested:
    """Store the records not seen before and refresh the reviews they concern."""
    _refuse_foreign_references(session, organisation_id, records)
    stored = store_usage(session.connection(), organisation_id, records)
    if stored:
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="odock.usage.ingested",
            target_type="organisation",
            target_id=organisation_id,
            after={
                "accepted": len(stored),
                "first": min(r.occurred_at for r in stored).isoformat(),
                "last": max(r.occurred_at for r in stored).isoformat(),
            },
        )
    refreshed = flag_usage_after_revocation(session, organisation_id, stored, actor)
    return Ingested(len(stored), len(records) - len(stored), refreshed)


def store_usage(
    connection: Connection, organisation_id: uuid.UUID, records: list[UsageIn]
) -> list[UsageIn]:
    """Insert the records whose id is new here, in one statement; returns those."""
    unique = list({record.id: record for record in records}.values())
    insert = conflict_insert(connection.dialect.name)
    statement = (
        insert(UsageRecord)
        .on_conflict_do_nothing(index_elements=["organisation_id", "external_id"])
        .returning(UsageRecord.external_id)
    )
    rows = [_row(organisation_id, record) for record in unique]
    inserted = set(connection.execute(statement, rows).scalars())
    return [record for record in unique if record.id in inserted]


def _row(organisation_id: uuid.UUID, record: UsageIn) -> dict[str, Any]:
    return {
        "id": new_id(),
        "organisation_id": organisation_id,
        "external_id": record.id,
        "occurred_at": record.occurred_at,
        "api_key_id": record.api_key_id,
        "user_id": record.user_id,
        "team_id": record.team_id,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost": record.cost,
        "requests": record.requests,
    }


def _refuse_foreign_references(
    session: Session, organisation_id: uuid.UUID, records: list[UsageIn]
) -> None:
    """A record may name a key, person or team not known here yet, but never another
    organisation's: that would put usage on someone else's review (models.odock_references)."""
    for foreign in (
        held_elsewhere(session, User, organisation_id, (r.user_id for r in records)),
        held_elsewhere(session, Team, organisation_id, (r.team_id for r in records)),
        keys_of_other_organisations(session, organisation_id, (r.api_key_id for r in records)),
    ):
        if foreign:
            first = min(foreign)
            raise UnknownReference(f"{first} is not in this organisation", id=str(first))


def flag_usage_after_revocation(
    session: Session, organisation_id: uuid.UUID, records: list[UsageIn], actor: Actor
) -> int:
    """Refresh (or open) the review of every revocation in force that these records show
    usage after, not yet on a finding (review_sweep.unrecorded_usage decides); returns how
    many were refreshed."""
    if not records:
        return 0
    revocations = review_sweep.unrecorded_usage(
        session, organisation_id, [record.id for record in records]
    )
    for revocation_id in sorted(revocations):
        # Opening returns the review as it is when the worker opened it meanwhile, so refresh
        # in any case (a refresh in line with the world changes nothing).
        review = reviews.review_of(session, revocation_id) or reviews.open_revocation_review(
            session, revocation_id=revocation_id, actor=actor
        )
        if review is not None:
            reviews.refresh_review(session, review=review, actor=actor)
    return len(revocations)
