"""Marks a view with the request body it reads, for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def takes_body(schema: type[BaseModel], *, required: bool = True) -> Callable[[ViewT], ViewT]:
    def mark(view: ViewT) -> ViewT:
        view.openapi_body = schema  # type: ignore[attr-defined]
        view.openapi_body_required = required  # type: ignore[attr-defined]
        return view

    return mark


def answers(status: int) -> Callable[[ViewT], ViewT]:
    """The view's success status, where the derived one (DELETE 204, POST `create` 201,
    otherwise 200) is not it."""

    def mark(view: ViewT) -> ViewT:
        view.openapi_ok = status  # type: ignore[attr-defined]
        return view

    return mark
