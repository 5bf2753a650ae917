"""SQLAlchemy event handlers for the length of a block, as the statement-counting tests use them."""

from __future__ import annotations

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
