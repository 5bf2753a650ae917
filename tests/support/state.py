"""The whole database as plain values, so a test can prove a request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.base import Base
from models.db import SessionFactory

# Columns a refused request may still write: a token's last use is recorded once it
# authenticates, whatever the request then does.
NOT_STATE = {("api_tokens", "last_used_at")}


def database_state(sessions: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, so a test can prove a request changed nothing."""
    with sessions() as fresh:
        state = {
            table.name: sorted(
                tuple(str(value) for value in row)
                for row in fresh.execute(
                    select(*(c for c in table.columns if (table.name, c.name) not in NOT_STATE))
                )
            )
            for table in Base.metadata.sorted_tables
        }
        fresh.rollback()
    return state
