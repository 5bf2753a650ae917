"""Free-text checks shared by every source of names and reasons."""

from __future__ import annotations

import sys
import unicodedata

from models.text import has_control_characters


def test_control_characters_are_exactly_unicode_category_cc():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        expected = unicodedata.category(char) == "Cc"
        assert has_control_characters(f"a{char}b") is expected, hex(code)


def test_text_without_control_characters():
    assert not has_control_characters("Zoë O'Neil \u2013 日本 \u2028 \u00a0")
    assert has_control_characters("tab\there") and has_control_characters("nul\x00")
