"""Reading JSON bodies strictly: one schema per request, unknown fields refused."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict

from models.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestBody(BaseModel):
    """Base of every request schema: unknown fields and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


MAX_DEPTH = 32
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
NOT_A_BRACKET = re.compile(r"[^\[\]{}]")


def json_body() -> Any:
    """The parsed JSON body, or a clear 400 when it is missing, not UTF-8, or not JSON."""
    raw = request.get_data(cache=True)
    if not raw:
        raise InvalidInput("a JSON body is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not valid UTF-8") from None
    if too_deep(text):
        # Refused before parsing: the parser would recurse once per level.
        raise InvalidInput(f"the body is nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # a number too long to convert, NaN or Infinity
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit` (brackets inside strings ignored)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for char in NOT_A_BRACKET.sub("", JSON_STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


def parse_body(schema: type[ModelT]) -> ModelT:
    data = json_body()
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return schema.model_validate(data)


def parse_optional_body(schema: type[ModelT]) -> ModelT:
    """For actions whose fields are all optional: no body means the defaults."""
    if not request.get_data(cache=True):
        return schema()
    return parse_body(schema)
