"""Active Directory's range retrieval of a long multi-valued attribute (MS-ADTS 3.1.1.3.1.3.3).

A group with more members than the server's MaxValRange (1500, or 5000 since Windows Server
2008) comes back with `member;range=0-1499` and no plain `member`; the rest is asked for as
`member;range=1500-*`, and so on, until an answer's range ends in `*`. Pure functions over
python-ldap's entries; `DirectoryClient.complete_ranges` sends the follow-up searches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Attributes = dict[str, list[bytes]]

_BOUNDS = re.compile(r"(\d+)-(\d+|\*)", re.ASCII)


class RangeError(ValueError):
    """An answer whose range cannot be followed: never to be read as fewer members."""


@dataclass(frozen=True, slots=True)
class ValueRange:
    """One answer's slice of an attribute's values."""

    key: str  # the attribute description as the server spelt it: "Member;Range=0-1499"
    attribute: str  # the description without the range option, lower-cased: "member"
    low: int
    high: int | None  # None for "*": these are the last values

    def next_request(self) -> str:
        """The attribute description that asks for the values after these."""
        assert self.high is not None
        return f"{self.attribute};range={self.high + 1}-*"


def parse_range(key: str) -> ValueRange | None:
    """The range option of an attribute description, None without one."""
    name, *options = key.split(";")
    ranges = [option for option in options if option.lower().startswith("range=")]
    if not ranges:
        return None
    bounds = _BOUNDS.fullmatch(ranges[0][len("range=") :])
    if len(ranges) > 1 or bounds is None:
        raise RangeError(f"{key!r} is not one range low-high or low-*")
    low = int(bounds[1])
    high = None if bounds[2] == "*" else int(bounds[2])
    if high is not None and high < low:
        raise RangeError(f"{key!r} ends before it starts")
    attribute = ";".join([name, *(option for option in options if option != ranges[0])])
    return ValueRange(key, attribute.lower(), low, high)


def ranged(attrs: Attributes, names: Iterable[str]) -> list[ValueRange]:
    """The ranged values of these attributes in an entry (names compared case-insensitively),
    each checked to hold as many values as its range says."""
    wanted = {name.lower() for name in names}
    found: list[ValueRange] = []
    for key, values in attrs.items():
        if ";" not in key or key.split(";", 1)[0].lower() not in wanted:
            continue
        value_range = parse_range(key)
        if value_range is None:
            continue
        if value_range.high is not None and len(values) != value_range.high - value_range.low + 1:
            raise RangeError(f"{key} came with {len(values)} values")
        found.append(value_range)
    return found


def first_ranges(attrs: Attributes, names: Iterable[str]) -> list[ValueRange]:
    """The ranged attributes of a search's entry: each must start at the first value."""
    found = ranged(attrs, names)
    for value_range in found:
        if value_range.low != 0:
            raise RangeError(f"{value_range.key} does not start at the first value")
    if len({value_range.attribute for value_range in found}) != len(found):
        raise RangeError("the entry carries two ranges of one attribute")
    return found


def following(attrs: Attributes, previous: ValueRange) -> ValueRange:
    """The range an answer to `previous.next_request()` carries: it must start right after
    `previous`, so every request advances."""
    found = ranged(attrs, [previous.attribute])
    assert previous.high is not None
    low = previous.high + 1
    if len(found) != 1 or found[0].attribute != previous.attribute:
        raise RangeError(f"the answer to {previous.next_request()} carried no one range of it")
    if found[0].low != low:
        raise RangeError(f"asked for {previous.next_request()}, the server answered {found[0].key}")
    return found[0]


def merged(attrs: Attributes, full: dict[str, list[bytes]]) -> Attributes:
    """The entry with its ranged attributes replaced by their full value lists under their
    plain names (`full` is keyed by `ValueRange.attribute`)."""
    plain = {key: values for key, values in attrs.items() if not _ranged_of(key, full)}
    for attribute, values in full.items():
        plain[attribute] = [*(_pop_plain(plain, attribute) or []), *values]
    return plain


def _ranged_of(key: str, full: dict[str, list[bytes]]) -> bool:
    if ";" not in key or key.split(";", 1)[0].lower() not in {a.split(";")[0] for a in full}:
        return False
    value_range = parse_range(key)
    return value_range is not None and value_range.attribute in full


def _pop_plain(attrs: Attributes, attribute: str) -> list[bytes] | None:
    """Remove and return the attribute's plain values, whatever case the server used."""
    key = next((key for key in attrs if key.lower() == attribute), None)
    return attrs.pop(key) if key is not None else None
