"""A person's row, locked for a change of their access and read as it is now.

Every change of who may use Odock (a status change of the lifecycle, an end date) decides on
the person's present state, whichever source asks: an admin, SCIM, LDAP, an IdP event, the
schedule. So the person's row is locked (PostgreSQL: SELECT … FOR NO KEY UPDATE) and read
after the lock, once per transaction; two sources changing one person at once then compose
as if one came after the other. A caller that locked and read its people itself, in bulk or
with its own rows (a SCIM write, an IdP event batch, an LDAP run), says so (`mark_read_locked`)
and no second statement is made. A change of team memberships takes its teams' locks before
its people's (models.membership_locks: the one order of those locks).

The organisation row comes after every person (`lock_organisation`, taken by the last-admin
decision, models.actions.last_admin, when an ACTIVE ORG_ADMIN is about to lose access): a
transaction that holds it locks no further person. An admin's change locks one person, then
the row; a batch (an IdP event delivery, an LDAP run, a SCIM group write, held changes
approved) locks all the people it may change first, in id order, and only then takes the row
for the first admin it ends. A batch that locked a person after the row waited for an admin's
request holding that person, which waited for the row: a deadlock (PostgreSQL 40P01). Locking
a person after the row raises LockOrderError, on SQLite too, so a path that breaks the order
fails in every test that takes it rather than in a rare race.

FOR NO KEY UPDATE: it holds off every other writer of the row but not a row that merely
refers to the person (FOR KEY SHARE): the mass-change gate counts a deactivation in a short
transaction of its own whose row refers to the person, and would otherwise wait for this one.
On SQLite the clause is dropped: every transaction holds the database's write lock from its
start (BEGIN IMMEDIATE, see models.db), and the re-read still brings in what an earlier
transaction of the same session read (sessions keep their objects past a commit).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from models.entities import Organisation, User

HELD = "odock.people_read_locked"  # session.info: (transaction, ids) of this transaction
ORGANISATION_HELD = "odock.organisation_locked"  # session.info: the transaction that holds it
BATCH = 500


class LockOrderError(RuntimeError):
    """A person locked after the organisation row (a programming error: see the module)."""


def read_locked(session: Session, user: User) -> None:
    """Lock this person's row and read them again, unless this transaction did already (a
    person not yet written has nobody else to race). Their own pending changes are written
    first, so the re-read keeps them."""
    if not inspect(user).persistent or holds(session, user.id):
        return
    _check_order(session, [user.id])
    session.flush()
    session.refresh(user, with_for_update={"key_share": True})
    mark_read_locked(session, [user.id])


def lock_people(session: Session, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Lock and read these people, in id order (two transactions locking overlapping people
    then never wait for each other in a circle), BATCH to a statement."""
    ordered = sorted(set(user_ids))
    _check_order(session, ordered)
    found: dict[uuid.UUID, User] = {}
    for start in range(0, len(ordered), BATCH):
        found.update(
            (user.id, user)
            for user in session.scalars(
                select(User)
                .where(User.id.in_(ordered[start : start + BATCH]))
                .order_by(User.id)
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            )
        )
    mark_read_locked(session, found)
    return found


def mark_read_locked(session: Session, user_ids: Iterable[uuid.UUID]) -> None:
    """The caller locked these people's rows in the current transaction and read them after
    the lock: nobody else can change them before it ends."""
    transaction = session.get_transaction()
    held: tuple[object, set[uuid.UUID]] | None = session.info.get(HELD)
    if held is None or held[0] is not transaction:
        held = session.info[HELD] = (transaction, set())
    held[1].update(user_ids)


def holds(session: Session, user_id: uuid.UUID) -> bool:
    held = session.info.get(HELD)
    return held is not None and held[0] is session.get_transaction() and user_id in held[1]


def lock_organisation(session: Session, organisation_id: uuid.UUID) -> None:
    """Lock the organisation's row until commit (FOR NO KEY UPDATE: inserts that refer to it
    do not wait), after every person this transaction will lock."""
    session.execute(
        select(Organisation.id)
        .where(Organisation.id == organisation_id)
        .with_for_update(key_share=True)
    )
    session.info[ORGANISATION_HELD] = session.get_transaction()


def _check_order(session: Session, user_ids: list[uuid.UUID]) -> None:
    held = session.info.get(ORGANISATION_HELD)
    if held is None or held is not session.get_transaction():
        return
    new = [user_id for user_id in user_ids if not holds(session, user_id)]
    if new:
        raise LockOrderError(
            f"person {new[0]} locked after the organisation row: lock every person the "
            "transaction may change before the first change that ends an admin's access"
        )
