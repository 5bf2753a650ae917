"""Query-string parameters, parsed with clear 400s for bad values."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TypeVar

from flask import request

from models.errors import InvalidInput
from webhooks.body import integer_text

EnumT = TypeVar("EnumT", bound=StrEnum)


def enum_param(name: str, enum: type[EnumT]) -> EnumT | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{name} must be one of {allowed}", field=name) from None


def uuid_param(name: str) -> uuid.UUID | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a UUID", field=name) from None


def int_param(name: str, default: int, *, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    refusal = InvalidInput(f"{name} must be a whole number from {low} to {high}", field=name)
    try:
        number = integer_text(value, name)
    except InvalidInput:
        raise refusal from None
    if not low <= number <= high:
        raise refusal
    return number


def text_param(name: str, *, max_length: int = 200) -> str | None:
    value = request.args.get(name)
    if value is not None and len(value) > max_length:
        raise InvalidInput(f"{name} must be at most {max_length} characters", field=name)
    return value or None


def bool_param(name: str) -> bool:
    value = request.args.get(name)
    if value is None or value == "":
        return False
    if value.lower() not in ("true", "false"):
        raise InvalidInput(f"{name} must be true or false", field=name)
    return value.lower() == "true"


def choice_param(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value
