"""Checks for free text that people and identity providers send (names, reasons)."""

from __future__ import annotations

import unicodedata

from models.errors import InvalidInput


def has_control_characters(value: str) -> bool:
    """NUL, escapes and other control characters: PostgreSQL refuses NUL, logs get garbled."""
    return any(unicodedata.category(char) == "Cc" for char in value)


def clean_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """The value stripped; a clear error when empty (if required), too long or unprintable."""
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    if has_control_characters(value):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return value
