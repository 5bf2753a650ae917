"""A bulk import's creates, written by threads while the directory is still being read.

On PostgreSQL the database's share of a first import (index and constraint work for two rows
per person, and for each membership) is larger than reading the directory, and it runs in
other processes: so once a sync has planned a full batch of creates, writer threads start
sending them while the read goes on. The groups are read before the people, so each batch
goes with its people's team memberships (models.directory.memberships.NewMembers).

There are WRITERS of them, each with its own connection and transaction, taking the batches
in turn: one backend writing was the import's critical path, and a second processor can
share it. Each batch (its people, their identity links, memberships and audit events) is
whole in one transaction. The mapped teams are made, and committed, before any batch is
written, so every transaction's memberships can point to them. Nothing of the people commits
before the read is complete and the plan has passed the safety checks; a failed read, a
quarantined plan or an error rolls every transaction back, so nobody ever sees a half-read
import. At the end the helpers' transactions commit first, then the one that applied the
rest of the plan and records the run as succeeded (see `Written.commit`). Syncs with fewer
creates never start the writers and keep every transaction short.

While they are open, a create of an email they hold (SCIM, the admin API) does not wait for
them: each transaction marks the import in flight (models.import_in_flight), and the create is
answered as the import's commit would have it, the email taken (409). A create of an email
they have not written yet goes through, and the import, coming to that person, refuses them
as existing (PeopleImport.write).

Not on SQLite: every transaction there takes the write lock up front (BEGIN IMMEDIATE), so a
write transaction held across the read would block the sync's own bookkeeping.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from connectors.ldap.plan import Create
from connectors.ldap.reconcile import TeamIndex
from models.db import SessionFactory, transaction
from models.directory.bulk_rows import BATCH
from models.directory.memberships import make_teams
from models.directory.people_import import ImportParts, PeopleImport
from models.directory.runs import ldap_actor
from models.entities import DirectoryConnector, Organisation
from models.import_in_flight import mark_import

# ("write", prepared rows) or ("withdraw", stable ids)
Message = tuple[str, Any]

# Connections writing an import at once: the machine's second processor for the database.
WRITERS = 2

# A writer that waits for a lock another writer holds would wait for ever (that one commits
# only at the end): no plan creates an email or stable id twice, but should one ever, the
# wait ends with an error and the run fails instead of hanging.
_LOCK_WAIT = "SET LOCAL lock_timeout = '30s'"


@dataclass
class _Writer:
    """One connection writing its share of the batches, on its own thread."""

    session: Session
    people: PeopleImport
    # One batch waiting per writer: the reader waits when the database falls behind, and
    # the batches held at once (memory) are as many as with one writer and two waiting.
    queue: queue.Queue[Message | None] = field(default_factory=lambda: queue.Queue(maxsize=1))
    thread: threading.Thread | None = None
    error: BaseException | None = None
    abandoned: bool = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._write, name="ldap-import", daemon=True)
        self.thread.start()

    def _write(self) -> None:
        try:
            while (message := self.queue.get()) is not None:
                if self.abandoned:
                    continue
                kind, payload = message
                if kind == "write":
                    self.people.write(payload)
                else:
                    self.people.withdraw(payload)
        except BaseException as exc:  # handed to the reading thread in finish()
            self.error = exc
            while self.queue.get() is not None:
                pass  # keep taking batches so the reader never blocks on a dead writer

    def stop(self) -> None:
        assert self.thread is not None
        self.queue.put(None)
        self.thread.join()

    def close(self) -> None:
        self.session.rollback()
        self.session.close()


@dataclass
class Written:
    """The import's transactions once every batch is in, none committed yet. The first is
    the one the rest of the plan is applied in."""

    sessions: list[Session]
    people: ImportParts

    @property
    def session(self) -> Session:
        return self.sessions[0]

    def commit(self) -> None:
        """The helpers' transactions first, then the one that records the run: an error
        before the last commit leaves the run failed (the reaper ends it, should the process
        die). Only a crash between these commits, a few milliseconds, can keep a part of
        the import, each of its batches whole with its audit events, under a failed run;
        the next sync finds those people linked and creates the rest."""
        for helper in self.sessions[1:]:
            helper.commit()
        self.session.commit()

    def close(self) -> None:
        for session in self.sessions:
            session.rollback()
            session.close()


class CreateStream:
    """Listens to the reconciler; hands the open transactions over once the plan may apply.

    The reading thread checks each batch and turns it into rows (Python work); the writer
    threads only send them and wait for PostgreSQL, so the processors stay busy.
    """

    def __init__(self, sessions: SessionFactory, connector_id: uuid.UUID) -> None:
        self.sessions = sessions
        self.connector_id = connector_id
        self.pending: list[Create] = []
        self.pending_keys: list[str] = []  # their normalised DNs, as the reconciler made them
        self.writers: list[_Writer] = []
        self.turn = 0
        self.teams: TeamIndex | None = None
        self.make_index: Callable[[], TeamIndex] | None = None
        self.abandoned = False
        self.handed_over = False

    @property
    def started(self) -> bool:
        return bool(self.writers)

    # --- the reconciler's listener (reading thread) --------------------------------------

    def teams_known(self, teams: Callable[[], TeamIndex]) -> None:
        """The people's teams, from groups read first: their memberships go in with them."""
        self.make_index = teams

    def created(self, item: Create, dn_key: str = "") -> None:
        self.pending.append(item)
        self.pending_keys.append(dn_key)
        if len(self.pending) >= BATCH:
            self._send_pending()

    def withdrawn(self, item: Create) -> None:
        for n, pending in enumerate(self.pending):
            if pending is item:
                del self.pending[n]
                del self.pending_keys[n]
                return
        for writer in self.writers:  # only the one that wrote it finds it
            writer.queue.put(("withdraw", [item.external_id]))

    def _send_pending(self) -> None:
        if not self.writers:
            self._start()
        writer = self.writers[self.turn % len(self.writers)]
        self.turn += 1
        prepared = writer.people.prepare(self.pending, self.pending_keys)
        self.pending = []
        self.pending_keys = []
        writer.queue.put(("write", prepared))

    def _start(self) -> None:
        if self.make_index is not None:
            self.teams = self.make_index()
            self.make_index = None
        if self.teams is not None and WRITERS > 1:
            self._make_teams(self.teams)
        for _ in range(WRITERS):
            writer = self._writer()
            self.writers.append(writer)
            writer.start()
        self.teams = None  # the imports hold it now, until they finish

    def _make_teams(self, teams: TeamIndex) -> None:
        """The mapped teams, made and committed before the people: every writer's
        memberships point to them, and no writer sees another's uncommitted rows."""
        with transaction(self.sessions) as session:
            connector = session.get_one(DirectoryConnector, self.connector_id)
            organisation = session.get_one(Organisation, connector.organisation_id)
            make_teams(
                session,
                organisation=organisation,
                names=list(teams.names.values()),
                actor=ldap_actor(connector),
            )

    def _writer(self) -> _Writer:
        session = self.sessions()
        if WRITERS > 1:
            session.execute(text(_LOCK_WAIT))
        connector = session.get_one(DirectoryConnector, self.connector_id)
        mark_import(session, connector.organisation_id)
        organisation = session.get_one(Organisation, connector.organisation_id)
        people = PeopleImport(
            session,
            organisation=organisation,
            connector=connector,
            actor=ldap_actor(connector),
            teams=self.teams,
        )
        return _Writer(session, people)

    # --- the end (reading thread) ----------------------------------------------------------

    def finish(self) -> Written:
        """The last creates written; the transactions, still open, and the import."""
        assert self.writers
        if self.pending:
            self._send_pending()
        for writer in self.writers:
            writer.stop()
        error = next((w.error for w in self.writers if w.error is not None), None)
        if error is not None:
            self.abandoned = True
            self._close()
            raise error
        self.handed_over = True
        sessions = [writer.session for writer in self.writers]
        sessions[0].execute(text("SET LOCAL lock_timeout TO DEFAULT"))
        return Written(sessions, ImportParts([writer.people for writer in self.writers]))

    def discard(self) -> None:
        """Roll back whatever was written (a failed read, a quarantined plan, an error)."""
        if self.handed_over or self.abandoned:
            return
        self.abandoned = True
        for writer in self.writers:
            writer.abandoned = True
        for writer in self.writers:
            writer.stop()
        self._close()

    def _close(self) -> None:
        for writer in self.writers:
            writer.close()
