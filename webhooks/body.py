"""Reading JSON bodies strictly: one schema per request, unknown fields refused."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict

from models.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestBody(BaseModel):
    """Base of every request schema: unknown fields and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def json_body() -> Any:
    """The parsed JSON body, or a clear 400 when it is missing, not UTF-8, or not JSON."""
    raw = request.get_data(cache=True)
    if not raw:
        raise InvalidInput("a JSON body is required")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise InvalidInput("the body is nested too deeply") from None


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
