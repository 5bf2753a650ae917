"""Writing the audit trail; every domain operation that changes state calls `record`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from models import request_ids, row_writes
from models.actor import Actor
from models.base import new_row
from models.entities import AuditEvent, User
from models.errors import AuditedRefusal
from models.snapshots import user_snapshot


@contextmanager
def keeping_refusals(session: Session) -> Iterator[None]:
    """Run a domain operation whose refusal is audited (AuditedRefusal): on refusal, commit
    its audit event (the operation changed nothing else) and let the refusal through."""
    try:
        yield
    except AuditedRefusal:
        session.commit()
        raise


def record(
    session: Session,
    *,
    actor: Actor,
    organisation_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    event = new_row(
        AuditEvent,
        organisation_id=organisation_id,
        source=actor.source,
        actor=str(actor),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
        actor_user_id=actor.user_id,
        request_id=request_ids.current(),
    )
    session.add(event)
    return event


def record_many(
    session: Session,
    *,
    actor: Actor,
    subject: Audited,
    action: str,
    target_type: str,
    changes: Sequence[tuple[dict[str, Any] | None, dict[str, Any] | None]],
) -> None:
    """One audit event about `subject` per (before, after) of `changes`, written at once as
    plain rows (one INSERT of many values; the events are not kept in the session): for a
    write that changes many rows in a few statements (a SCIM group's members)."""
    if not changes:
        return
    mapper = AuditEvent.__mapper__
    common = {
        "organisation_id": subject.organisation_id,
        "source": actor.source,
        "actor": str(actor),
        "action": action,
        "target_type": target_type,
        "target_id": str(subject.id),
        "actor_user_id": actor.user_id,
        "request_id": request_ids.current(),
    }
    rows = [
        row_writes.row_of(new_row(AuditEvent, **common, before=before, after=after), mapper)
        for before, after in changes
    ]
    session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


def record_each(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    subjects: Sequence[Audited],
    after: dict[str, Any],
) -> None:
    """One audit event per subject, each in its own organisation, all saying the same `after`,
    written at once as plain rows (one INSERT sent with every row's values; not kept in the
    session): for a step that ends the same work on many objects at once (a gateway forgetting
    a leaver's keys). A single VALUES list of every row cost more: SQLAlchemy compiles it anew
    for each call (docs/benchmarks/reviews.md)."""
    mapper = AuditEvent.__mapper__
    common = {
        "source": actor.source,
        "actor": str(actor),
        "action": action,
        "target_type": target_type,
        "actor_user_id": actor.user_id,
        "request_id": request_ids.current(),
        "after": after,
    }
    rows = [
        row_writes.row_of(
            new_row(
                AuditEvent,
                **common,
                organisation_id=subject.organisation_id,
                target_id=str(subject.id),
            ),
            mapper,
        )
        for subject in subjects
    ]
    if rows:
        session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


class Audited(Protocol):
    """Anything an organisation owns and audits by its own id."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...


def record_change(
    session: Session,
    *,
    actor: Actor,
    subject: Audited,
    action: str,
    target_type: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """An audit event about one object, in that object's organisation."""
    return record(
        session,
        actor=actor,
        organisation_id=subject.organisation_id,
        action=action,
        target_type=target_type,
        target_id=subject.id,
        before=before,
        after=after,
    )


def record_user_change(
    session: Session,
    user: User,
    actor: Actor,
    action: str,
    *,
    before: dict[str, object] | None,
    extra: dict[str, object] | None = None,
) -> AuditEvent:
    """An audit event about a person: `before` as given, after as the person is now."""
    return record_change(
        session,
        actor=actor,
        subject=user,
        action=action,
        target_type="user",
        before=before,
        after={**user_snapshot(user), **(extra or {})},
    )
