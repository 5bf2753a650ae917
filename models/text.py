"""Checks for free text that people and identity providers send (names, reasons)."""

from __future__ import annotations

import re

from models.errors import InvalidInput

# Unicode's control characters (category Cc) are exactly these 65 code points; one regex
# search is many times faster than asking unicodedata about each character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    """NUL, escapes and other control characters: PostgreSQL refuses NUL, logs get garbled."""
    if value.isascii():  # a flag of the string: in ASCII, exactly the controls are unprintable
        return not value.isprintable()
    return _CONTROL.search(value) is not None


def clean_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """The value stripped; a clear error when empty (if required), too long or unprintable."""
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    # "İ" is two characters in lower case, and keys are lowered; ASCII keeps its length.
    if not value.isascii() and len(value.lower()) > max_length:
        raise InvalidInput(
            f"{field} must be at most {max_length} characters in lower case", field=field
        )
    if has_control_characters(value):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return value
