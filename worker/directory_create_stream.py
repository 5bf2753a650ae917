"""A bulk import's creates, written by a thread while the directory is still being read.

On PostgreSQL the database's share of a first import (index and constraint work for two rows
per person, and for each membership and its audit event) is larger than reading the
directory, and it runs in another process: so once a sync has planned a full batch of
creates, a writer thread starts sending them, in the transaction that will later apply the
rest of the plan, while the read goes on. The groups are read before the people, so each
batch goes with its people's team memberships (models.directory.memberships.NewMembers).
Nothing of it commits before the read is complete and the plan has passed the safety checks;
a failed read, a quarantined plan or an error rolls the transaction back, so nobody ever sees
a half-read import. Syncs with fewer creates never start it and keep every transaction short.

Not on SQLite: every transaction there takes the write lock up front (BEGIN IMMEDIATE), so a
write transaction held across the read would block the sync's own bookkeeping.
"""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

from sqlalchemy.orm import Session

from connectors.ldap.plan import Create
from connectors.ldap.reconcile import TeamIndex
from models.db import SessionFactory
from models.directory.bulk_rows import BATCH
from models.directory.people_import import PeopleImport
from models.directory.runs import ldap_actor
from models.entities import DirectoryConnector, Organisation

# ("write", prepared rows) or ("withdraw", stable ids)
Message = tuple[str, Any]


class CreateStream:
    """Listens to the reconciler; hands the open transaction over once the plan may apply.

    The reading thread checks each batch and turns it into rows (Python work); the writer
    thread only sends them and waits for PostgreSQL, so both processors stay busy.
    """

    def __init__(self, sessions: SessionFactory, connector_id: uuid.UUID) -> None:
        self.sessions = sessions
        self.connector_id = connector_id
        self.pending: list[Create] = []
        # Two batches in flight at most: the reader waits when the database falls behind.
        self.queue: queue.Queue[Message | None] = queue.Queue(maxsize=2)
        self.thread: threading.Thread | None = None
        self.session: Session | None = None
        self.people: PeopleImport | None = None
        self.teams: TeamIndex | None = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.handed_over = False

    @property
    def started(self) -> bool:
        return self.thread is not None

    # --- the reconciler's listener (reading thread) --------------------------------------

    def teams_known(self, teams: TeamIndex) -> None:
        """The people's teams, from groups read first: their memberships go in with them."""
        self.teams = teams

    def created(self, item: Create) -> None:
        self.pending.append(item)
        if len(self.pending) >= BATCH:
            self._send_pending()

    def withdrawn(self, item: Create) -> None:
        for n, pending in enumerate(self.pending):
            if pending is item:
                del self.pending[n]
                return
        if self.people is not None:
            self.queue.put(("withdraw", [item.external_id]))

    def _send_pending(self) -> None:
        if self.people is None:
            self._start()
        assert self.people is not None
        prepared = self.people.prepare(self.pending)
        self.pending = []
        self.queue.put(("write", prepared))

    def _start(self) -> None:
        self.session = session = self.sessions()
        connector = session.get_one(DirectoryConnector, self.connector_id)
        organisation = session.get_one(Organisation, connector.organisation_id)
        self.people = PeopleImport(
            session,
            organisation=organisation,
            connector=connector,
            actor=ldap_actor(connector),
            teams=self.teams,
        )
        self.teams = None  # the import holds it now, until it finishes
        self.thread = threading.Thread(target=self._write, name="ldap-import", daemon=True)
        self.thread.start()

    # --- the writer thread -----------------------------------------------------------------

    def _write(self) -> None:
        assert self.people is not None
        people = self.people
        try:
            while (message := self.queue.get()) is not None:
                if self.abandoned:
                    continue
                kind, payload = message
                if kind == "write":
                    people.write(payload)
                else:
                    people.withdraw(payload)
        except BaseException as exc:  # handed to the reading thread in finish()
            self.error = exc
            while self.queue.get() is not None:
                pass  # keep taking batches so the reader never blocks on a dead writer

    # --- the end (reading thread) ----------------------------------------------------------

    def finish(self) -> tuple[Session, PeopleImport]:
        """The last creates written; the session, its transaction open, and the import."""
        assert self.thread is not None
        if self.pending:
            self._send_pending()
        self._stop()
        if self.error is not None:
            self.abandoned = True
            self._close()
            raise self.error
        assert self.session is not None and self.people is not None
        self.handed_over = True
        return self.session, self.people

    def discard(self) -> None:
        """Roll back whatever was written (a failed read, a quarantined plan, an error)."""
        if self.handed_over or self.abandoned:
            return
        self.abandoned = True
        if self.thread is not None:
            self._stop()
        self._close()

    def _stop(self) -> None:
        assert self.thread is not None
        self.queue.put(None)
        self.thread.join()

    def _close(self) -> None:
        if self.session is not None:
            self.session.rollback()
            self.session.close()
            self.session = None
