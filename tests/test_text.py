"""Free-text checks shared by every source of names and reasons."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.text import has_control_characters


def test_control_characters_are_exactly_unicode_category_cc():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        expected = unicodedata.category(char) == "Cc"
        assert has_control_characters(f"a{char}b") is expected, hex(code)


def test_text_without_control_characters():
    assert not has_control_characters("Zoë O'Neil \u2013 日本 \u2028 \u00a0")
    assert has_control_characters("tab\there") and has_control_characters("nul\x00")


def _pattern_says(email: str) -> bool:
    """What validate_email accepted before its ASCII shortcut: the pattern, no controls."""
    from models.actions.users import EMAIL_PATTERN

    return EMAIL_PATTERN.match(email) is not None and not has_control_characters(email)


EMAIL_PARTS = ["a", "b.c", "@", ".", " ", "\t", "\n", "\x00", "\x7f", "é", "\u00a0", "\x85", "-"]


@given(st.lists(st.sampled_from(EMAIL_PARTS), max_size=8))
def test_the_email_check_agrees_with_the_pattern(parts: list[str]) -> None:
    email = "".join(parts)
    assert _accepted(email) is _pattern_says(email.strip()), repr(email)


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ada@acme.example", True),
        ("ada@acme.", False),
        ("ada@.example", False),
        ("ada@acme..x", True),  # as the pattern has always allowed
        ("@acme.example", False),
        ("ada@acme@x.example", False),
        ("ada lovelace@acme.example", False),
        ("ada\x7f@acme.example", False),
        ("zoë@acme.example", True),
        ("ada@acme.example\u00a0x", False),
    ],
)
def test_email_forms(email: str, valid: bool) -> None:
    assert _accepted(email) is valid
    assert _pattern_says(email) is valid


def _accepted(email: str) -> bool:
    from models.actions.users import validate_email
    from models.errors import InvalidInput

    try:
        validate_email(email)
    except InvalidInput:
        return False
    return True


def test_a_name_too_long_only_in_lower_case_is_refused_and_ascii_is_measured_as_is() -> None:
    from models.errors import InvalidInput
    from models.text import clean_text

    assert clean_text("A" * 200, field="name", max_length=200) == "A" * 200
    with pytest.raises(InvalidInput, match="in lower case"):
        clean_text("\u0130" * 101, field="name", max_length=200)
