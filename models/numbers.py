"""Numbers written as text (a query parameter, a budget's `amount`, a usage record's `cost`):
ASCII digits only, one rule for every protocol (webhooks.body.integer_text reads integers by it).

Python's Decimal and int read any Unicode digit (a fullwidth or Arabic-Indic 5), surrounding
spaces, "1_000" and exponents; pydantic passes text to them as it is. Every schema field of a
number that may arrive as text uses the type here, so a fullwidth "5" or " 5" is refused (the
field named, in the protocol's format) and never stored as 5. The field's own bounds still apply.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator

# An optional sign and ASCII digits; nothing else (a query string's `?limit=`, a SCIM
# SearchRequest's count given as text).
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
# An optional sign, digits with an optional decimal point (".5" and "5." too); nothing else.
DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def decimal_text(value: str) -> Decimal:
    """The number in `value`, or ValueError when it is not plain ASCII decimal notation."""
    if not DECIMAL_TEXT.fullmatch(value):
        raise ValueError(
            "a number as text is ASCII digits with an optional sign and decimal point, "
            "without spaces"
        )
    return Decimal(value)


def _plain_decimal(value: Any) -> Any:
    # JSON numbers arrive parsed (bounded by webhooks.body's decoder); only text is checked.
    return decimal_text(value) if isinstance(value, str) else value


# Decimal, read from text by the rule above: `Annotated[PlainDecimal, Field(...)]`.
PlainDecimal = Annotated[Decimal, BeforeValidator(_plain_decimal)]
