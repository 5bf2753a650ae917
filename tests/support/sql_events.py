"""SQLAlchemy event handlers for the length of a block, as the statement-counting tests use them."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def listening(target: Any, **handlers: Callable[..., Any]) -> Iterator[None]:
    """`handlers` (event name = function) on `target` (an engine, or `Engine` for every one)."""
    for name, handler in handlers.items():
        event.listen(target, name, handler)
    try:
        yield
    finally:
        for name, handler in handlers.items():
            event.remove(target, name, handler)


CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
# The token's own statements, the request's rather than its work's: its look-up once the
# grant cache forgets it and its last use, written once a minute into whichever request
# crosses the minute (on a loaded run, one of two requests a test compared).
_TOKEN_BOOKKEEPING = re.compile(r"UPDATE api_tokens\b|SELECT api_tokens\.")


@contextmanager
def statements_sent(engine: Any) -> Iterator[list[str]]:
    """The statements this thread sends through `engine` meanwhile, less transaction control
    (SQLite's reads begin a transaction of their own, see models.db) and the token's
    bookkeeping."""
    seen: list[str] = []
    me = threading.get_ident()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() != me or statement.startswith(CONTROL):
            return
        if not _TOKEN_BOOKKEEPING.match(statement):
            seen.append(statement)

    with listening(engine, before_cursor_execute=record):
        yield seen
