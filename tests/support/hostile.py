"""The hostile JSON values of issue 14, as raw fragments to put where a body holds a value.

Each is named with how the shared guard (webhooks.body) classes it: "syntax" for what is not
JSON we parse, "value" for well-formed JSON carrying a value nothing may store.
"""

from __future__ import annotations

import json
from typing import Any

PLACEHOLDER = "__hostile__"

HOSTILE_VALUES: dict[str, tuple[str, str]] = {
    "nan": ("NaN", "syntax"),
    "infinity": ("Infinity", "syntax"),
    "minus_infinity": ("-Infinity", "syntax"),
    "nested_900_deep": ("[" * 900 + "]" * 900, "syntax"),
    "nested_33_deep": ('{"a": ' * 33 + "1" + "}" * 33, "syntax"),
    "integer_of_5000_digits": ("9" * 5000, "value"),
    "integer_of_21_digits": ("-" + "1" * 21, "value"),
    "1e400": ("1e400", "value"),
    "nul": ('"a\\u0000b"', "value"),
    "lone_high_surrogate": ('"\\ud800"', "value"),
    "lone_low_surrogate": ('"x\\udfffy"', "value"),
    # Python kept the last of the two, where a proxy or filter in front may read the first.
    "name_given_twice": ('{"a": 1, "a": 2}', "syntax"),
}


def with_hostile(document: Any, case: str) -> bytes:
    """`document` as JSON bytes with its PLACEHOLDER string replaced by the hostile value."""
    fragment = HOSTILE_VALUES[case][0]
    text = json.dumps(document)
    assert f'"{PLACEHOLDER}"' in text, "the document needs a placeholder value"
    return text.replace(f'"{PLACEHOLDER}"', fragment, 1).encode()
