"""What applying a batch of IdP events reads before it writes: the subjects' identity links,
their users (locked) and the users' event cursors, each kind in one query.

Looked up event by event, a batch of 200 profile updates cost 600 queries and, because every
query flushes what the previous event changed, 200 flushes; read up front, the batch costs
three queries and its writes are flushed together.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from connectors.idp_events import Subject
from models import person_lock
from models.entities import EventCursor, IdentityLink, User
from models.entities.user import email_key
from models.enums import Source

LinkKey = tuple[Source, str]
CursorKey = tuple[uuid.UUID, Source, str]


def link_sources(source: Source) -> tuple[Source, ...]:
    """Where an event's external id may be linked: Okta users are often provisioned by SCIM."""
    return (source, Source.SCIM) if source is Source.OKTA else (source,)


class EventLookups:
    """The rows a batch's events refer to, kept for the transaction (the identity map alone
    holds objects weakly). What was not read up front is read on demand and kept too."""

    def __init__(self, session: Session, organisation_id: uuid.UUID) -> None:
        self.session = session
        self.organisation_id = organisation_id
        self._links: dict[LinkKey, uuid.UUID | None] = {}
        self._users: dict[uuid.UUID, User] = {}
        self._cursors: dict[CursorKey, EventCursor] = {}
        self._cursors_read: set[tuple[uuid.UUID, Source]] = set()

    @classmethod
    def read(
        cls,
        session: Session,
        organisation_id: uuid.UUID,
        subjects: Iterable[tuple[Source, Subject]],
    ) -> EventLookups:
        lookups = cls(session, organisation_id)
        subjects = list(subjects)
        keys = {
            (link_source, subject.external_id)
            for source, subject in subjects
            if subject.external_id
            for link_source in link_sources(source)
        }
        lookups._read_links(keys)
        linked = {user_id for user_id in lookups._links.values() if user_id}
        # Also the people an event will find by email (no link yet): locked with the rest,
        # not when their event comes, once an earlier one may hold the organisation row
        # (models.person_lock: no person locked after it).
        unlinked = {
            subject.email
            for source, subject in subjects
            if subject.email
            and not any(
                lookups._links.get((link_source, subject.external_id or ""))
                for link_source in link_sources(source)
            )
        }
        lookups._lock_users(linked | lookups._ids_by_email(unlinked))
        lookups._read_cursors(list(lookups._users), {source for source, _ in keys})
        return lookups

    def linked_user_id(self, source: Source, external_id: str) -> uuid.UUID | None:
        """The user linked to this id at this source, if any."""
        key = (source, external_id)
        if key not in self._links:
            self._read_links({key})
        return self._links[key]

    def remember_link(self, source: Source, external_id: str, user_id: uuid.UUID) -> None:
        self._links[(source, external_id)] = user_id

    def user(self, user_id: uuid.UUID) -> User:
        """The user, locked for the rest of the transaction."""
        if user_id not in self._users:
            self._lock_users({user_id})
        return self._users[user_id]

    def cursor(self, user: User, source: Source, aspect: str) -> EventCursor | None:
        if (user.id, source) not in self._cursors_read:
            self._read_cursors([user.id], {source})
        return self._cursors.get((user.id, source, aspect))

    def remember_cursor(self, cursor: EventCursor) -> None:
        self._cursors[(cursor.user_id, cursor.source, cursor.aspect)] = cursor

    def _read_links(self, keys: set[LinkKey]) -> None:
        if not keys:
            return
        self._links.update(dict.fromkeys(keys))
        rows = self.session.execute(
            select(IdentityLink.source, IdentityLink.external_id, IdentityLink.user_id).where(
                IdentityLink.organisation_id == self.organisation_id,
                tuple_(IdentityLink.source, IdentityLink.external_id).in_(list(keys)),
            )
        )
        self._links.update(
            {(source, external_id): user_id for source, external_id, user_id in rows}
        )

    def _ids_by_email(self, emails: set[str]) -> set[uuid.UUID]:
        keys = sorted({email_key(email) for email in emails})
        found: set[uuid.UUID] = set()
        for start in range(0, len(keys), person_lock.BATCH):
            found.update(
                self.session.scalars(
                    select(User.id).where(
                        User.organisation_id == self.organisation_id,
                        User.email_key.in_(keys[start : start + person_lock.BATCH]),
                    )
                )
            )
        return found

    def _lock_users(self, user_ids: set[uuid.UUID]) -> None:
        if user_ids:
            self._users.update(person_lock.lock_people(self.session, user_ids))

    def _read_cursors(self, user_ids: list[uuid.UUID], sources: set[Source]) -> None:
        if not user_ids or not sources:
            return
        found = self.session.scalars(
            select(EventCursor).where(
                EventCursor.user_id.in_(user_ids), EventCursor.source.in_(sources)
            )
        )
        self._cursors_read.update((user_id, source) for user_id in user_ids for source in sources)
        for cursor in found:
            self.remember_cursor(cursor)
