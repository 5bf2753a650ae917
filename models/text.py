"""Checks for free text that people and identity providers send (names, reasons)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import idna

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


# Unicode's format characters (category Cf: bidi overrides and isolates, zero-width space and
# joiners, the BOM, soft hyphen, tag characters) and the line and paragraph separators (Zl,
# Zp): invisible, or they move the text around them. Written out (Unicode 14, this Python's;
# a test compares them with unicodedata) as a regex cannot ask for a category.
_FORMAT_RANGES = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# Unicode's other default-ignorable characters (DerivedCoreProperties.txt,
# Default_Ignorable_Code_Point, the assigned ones outside Cf): rendered as nothing. The Hangul
# fillers (U+3164, U+FFA0) are the usual "invisible name"; the variation selectors pick an
# emoji's or an ideograph's glyph, so one right after a visible non-ASCII character is kept.
_VARIATION_RANGES = "\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"
_IGNORABLE_RANGES = f"\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0{_VARIATION_RANGES}"
_HIDDEN_RANGES = _FORMAT_RANGES + _IGNORABLE_RANGES
_FORMAT = re.compile(f"[{_HIDDEN_RANGES}]")
_SHOWN_CHARACTER = f"[^\\x00-\\x7f\\s{_HIDDEN_RANGES}]"
# A variation selector right after a visible non-ASCII character picks its glyph: kept.
_SHOWN = re.compile(f"(?<={_SHOWN_CHARACTER})[{_VARIATION_RANGES}]|(?P<hidden>[{_HIDDEN_RANGES}])")
_JOINERS = "\u200c\u200d"
# Extended_Pictographic (emoji-data.txt, Unicode 15), the characters an emoji ZWJ sequence
# joins (UTS #51); after one, its presentation selector (U+FE0F) or skin tone modifier.
_PICTOGRAPHIC = re.compile(
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328"
    "\u2388\u23cf\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe"
    "\u2600-\u2605\u2607-\u2612\u2614-\u2685\u2690-\u2705\u2708-\u2712\u2714\u2716"
    "\u271d\u2721\u2728\u2733\u2734\u2744\u2747\u274c\u274e\u2753-\u2755\u2757"
    "\u2763-\u2767\u2795-\u2797\u27a1\u27b0\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c"
    "\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f"
    "\U0001f12f\U0001f16c-\U0001f171\U0001f17e\U0001f17f\U0001f18e\U0001f191-\U0001f19a"
    "\U0001f1ad-\U0001f1e5\U0001f201-\U0001f20f\U0001f21a\U0001f22f\U0001f232-\U0001f23a"
    "\U0001f23c-\U0001f23f\U0001f249-\U0001f3fa\U0001f400-\U0001f53d\U0001f546-\U0001f64f"
    "\U0001f680-\U0001f6ff\U0001f774-\U0001f77f\U0001f7d5-\U0001f7ff\U0001f80c-\U0001f80f"
    "\U0001f848-\U0001f84f\U0001f85a-\U0001f85f\U0001f888-\U0001f88f\U0001f8ae-\U0001f8ff"
    "\U0001f90c-\U0001f93a\U0001f93c-\U0001f945\U0001f947-\U0001faff\U0001fc00-\U0001fffd]"
)
_EMOJI_ZWJ = re.compile(f"{_PICTOGRAPHIC.pattern}[\ufe0f\U0001f3fb-\U0001f3ff]?\u200d")
# idna's ContextJ check reads the joining types of the characters around the joiner; a
# window of this many on each side holds any real word (idna refuses labels over 1024).
_CONTEXT = 64


def _joiner_in_context(value: str, at: int) -> bool:
    """Whether the joiner at `at` is part of how the text is written: IDNA's ContextJ rules
    (RFC 5892 appendix A, which UTS #39 follows): a ZWJ or ZWNJ right after a virama (Indic
    scripts), a ZWNJ between a character joining to its left and one joining to its right
    (Arabic script: Persian, Urdu...); or a ZWJ inside an emoji ZWJ sequence (UTS #51)."""
    if value[at] == "\u200d" and _PICTOGRAPHIC.match(value, at + 1):
        start = max(0, at - 2)
        if any(_EMOJI_ZWJ.fullmatch(value, i, at + 1) for i in range(start, at)):
            return True
    start = max(0, at - _CONTEXT)
    try:
        return idna.core.valid_contextj(value[start : at + _CONTEXT + 1], at - start)
    except (ValueError, idna.IDNAError):  # an unassigned neighbour: no context holds
        return False


def has_format_characters(value: str) -> bool:
    """Whether `value` holds an invisible or text-moving character (see _HIDDEN_RANGES)."""
    return not value.isascii() and _FORMAT.search(value) is not None


def _is_hidden(match: re.Match[str]) -> bool:
    hidden = match.group("hidden")
    if hidden is None:
        return False
    return hidden not in _JOINERS or not _joiner_in_context(match.string, match.start())


def _marker(match: re.Match[str]) -> str:
    return _code_point(match) if _is_hidden(match) else match.group()


def _code_point(match: re.Match[str]) -> str:
    return f"<U+{ord(match.group()):04X}>"


def visible(value: str) -> str:
    """`value` as an admin should read it: every invisible or text-moving character shown as
    a marker ("<U+202E>"), so "alice" with a zero-width space or a right-to-left override
    cannot pass for another name. Letters of every script, and joiners where they are part
    of the writing (_joiner_in_context: emoji sequences, after a virama, Persian's ZWNJ), are
    kept as they are; a joiner anywhere else ("管理" ZWJ "者") is marked. Control characters
    too ("<U+000A>"): a line break in a name Odock or a directory sent would start a line of
    its own in an alert that lists one finding per line, or in a header."""
    if value.isascii():
        return value if value.isprintable() else _CONTROL.sub(_code_point, value)
    return _SHOWN.sub(_marker, _CONTROL.sub(_code_point, value))


def visible_lines(text: str) -> str:
    """A text whose line breaks are its writer's (a command's output) with each line
    visible(): a name in it neither breaks a line nor moves or drives the terminal."""
    return "\n".join(visible(line) for line in text.split("\n"))


def visible_strings(value: Any) -> Any:
    """A copy of a JSON-like value (a notification's payload) with every string visible()."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {key: visible_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [visible_strings(item) for item in value]
    return value


def check_identifier(value: str, *, field: str) -> str:
    """An identifier (an email, a SCIM userName) has no invisible or text-moving character:
    "alice@acme.example" with a zero-width space would be another person who looks the same
    everywhere. Names are kept and shown with markers instead (visible). Nor a compatibility
    character ("ANN" in fullwidth letters, a ligature): it reads as the plain one, and
    the email key takes it for that one (connectors.email_address)."""
    if has_format_characters(value):
        raise InvalidInput(
            f"{field} must not contain invisible or direction-changing characters "
            f"(such as {visible(_FORMAT.findall(value)[0])})",
            field=field,
        )
    if has_compatibility_forms(value):
        raise InvalidInput(
            f"{field} must be written in plain characters, not fullwidth or other "
            f"compatibility forms (such as {_first_compatibility_form(value)!r})",
            field=field,
        )
    return value


def check_key_name(value: str, *, field: str) -> str:
    """A name that is also a key: a team's (SCIM groups, LDAP group mappings and IdP events
    find a team by its name in any case; a SCIM group's name is mapped to a role), the group
    names a role or team mapping is keyed by. Refused when it holds a character visible()
    would mark: "Admins" with a zero-width space is another group, mapped to another role or
    to none, that looks like "Admins" everywhere. What visible() keeps (a joiner inside an
    emoji sequence, after a virama or between Persian letters, a variation selector after an
    emoji) is kept here too, so one rule says what a name shows and what a key may hold."""
    if value.isascii():
        return value
    hidden = next((found for found in _SHOWN.finditer(value) if _is_hidden(found)), None)
    if hidden is not None:
        raise InvalidInput(
            f"{field} must not contain invisible or direction-changing characters (such as "
            f"{_marker(hidden)}): it would name a group that looks like another",
            field=field,
        )
    return value


def has_compatibility_forms(value: str) -> bool:
    """Whether `value` holds a compatibility character (fullwidth or halfwidth forms,
    ligatures, superscripts...), one NFKC reads as another, plainer one."""
    if value.isascii():
        return False
    composed = unicodedata.normalize("NFC", value)
    return unicodedata.normalize("NFKC", composed) != composed


def _first_compatibility_form(value: str) -> str:
    composed = unicodedata.normalize("NFC", value)
    return next(c for c in composed if unicodedata.normalize("NFKC", c) != c)
