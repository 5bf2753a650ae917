"""Identity links: which source a user came from, and provisioning people from a source.

SCIM, LDAP and IdP events all find people here: first by the stable external id of their
source, then by email (so a person who already exists is linked, not duplicated, and keeps
their keys and history).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit
from models.actions.users import Admitting, add_user, find_user_by_email
from models.actor import Actor
from models.base import new_row, utcnow
from models.entities import IdentityLink, User
from models.enums import Role, Source, UserStatus
from models.errors import Conflict


def find_link(
    session: Session, organisation_id: uuid.UUID, source: Source, external_id: str
) -> IdentityLink | None:
    return session.scalar(
        select(IdentityLink).where(
            IdentityLink.organisation_id == organisation_id,
            IdentityLink.source == source,
            IdentityLink.external_id == external_id,
        )
    )


def find_linked_user(
    session: Session, organisation_id: uuid.UUID, source: Source, external_id: str
) -> User | None:
    link = find_link(session, organisation_id, source, external_id)
    return link.user if link is not None else None


def link_identity(
    session: Session,
    *,
    user: User,
    source: Source,
    external_id: str,
    actor: Actor,
    attributes: dict[str, Any] | None = None,
    connector_id: uuid.UUID | None = None,
) -> IdentityLink:
    """Link a user to a source's stable id; linking the same pair again is a no-op."""
    existing = find_link(session, user.organisation_id, source, external_id)
    if existing is not None:
        if existing.user_id != user.id:
            raise Conflict(f"{source} id {external_id} is already linked to another user")
        return existing
    link = _add_link(session, user, source, external_id, actor, attributes, connector_id)
    session.flush()
    return link


def _add_link(
    session: Session,
    user: User,
    source: Source,
    external_id: str,
    actor: Actor,
    attributes: dict[str, Any] | None,
    connector_id: uuid.UUID | None,
) -> IdentityLink:
    link = new_row(
        IdentityLink,
        organisation_id=user.organisation_id,
        user_id=user.id,
        source=source,
        external_id=external_id,
        attributes=attributes or {},
        connector_id=connector_id,
    )
    session.add(link)
    audit.record_change(
        session,
        actor=actor,
        subject=user,
        action="identity.linked",
        target_type="user",
        after={"source": source.value, "external_id": external_id},
    )
    return link


def mark_link_deleted(session: Session, *, link: IdentityLink, actor: Actor) -> None:
    if link.deleted_at is not None:
        return
    link.deleted_at = utcnow()
    audit.record(
        session,
        actor=actor,
        organisation_id=link.organisation_id,
        action="identity.deleted",
        target_type="user",
        target_id=link.user_id,
        before={"source": link.source.value, "external_id": link.external_id},
    )


@dataclass(frozen=True)
class Provisioned:
    user: User
    link: IdentityLink
    created: bool


def provision_user(
    session: Session,
    *,
    organisation: Admitting,
    source: Source,
    external_id: str,
    email: str,
    name: str,
    actor: Actor,
    role: Role = Role.USER,
    status: UserStatus | None = None,
    attributes: dict[str, Any] | None = None,
    connector_id: uuid.UUID | None = None,
    fresh_external_id: bool = False,
    new_email: bool = False,
) -> Provisioned:
    """The user behind this source id: already linked, linked by email, or newly created.

    `fresh_external_id`: the caller has just minted the id (SCIM's own), so no link can
    hold it yet. `new_email`: the caller has just found no user with this email (in this
    transaction), so none is looked for. Nothing is flushed here; the unique keys still
    refuse a concurrent twin.
    """
    if not fresh_external_id:
        link = find_link(session, organisation.id, source, external_id)
        if link is not None:
            return Provisioned(user=link.user, link=link, created=False)
    user = None if new_email else find_user_by_email(session, organisation.id, email)
    created = user is None
    if user is None:
        user = add_user(
            session,
            organisation=organisation,
            email=email,
            name=name,
            role=role,
            actor=actor,
            status=status,
        )
    link = _add_link(session, user, source, external_id, actor, attributes, connector_id)
    return Provisioned(user=user, link=link, created=created)
