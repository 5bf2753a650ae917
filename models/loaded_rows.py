"""Entities built from rows a hot path read with Core, put in the session as a load leaves them.

A SCIM write locks its user and reads it in one statement: the user, its person and its
emails. Loading those as entities through the ORM (its result description, row processors and
per-entity bookkeeping) cost more CPU than the statement. `attach_loaded` takes entities built
with `models.base.new_row` from such a row, every column of each given, and makes them what the
ORM's load would have: persistent in the session, nothing pending; a relationship set with
`set_committed_value` stays, any other loads when first used.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from models.base import Base


def attach_loaded(session: Session, entities: list[Base]) -> bool:
    """Attach these entities as loaded; False, attaching none, when the session already holds
    one of them (the caller then loads them the usual way, over what the session holds)."""
    for entity in entities:
        make_transient_to_detached(entity)
    keys = [inspect(entity).key for entity in entities]
    if any(key is None or key in session.identity_map for key in keys):
        return False
    session.add_all(entities)
    return True
