"""Active Directory's range retrieval of group members (MS-ADTS 3.1.1.3.1.3.3).

OpenLDAP's slapd, which the other tests in this directory start, cannot serve ranged
attributes (`member;range=0-1499`): only AD and AD LDS do. So the parsing and merging are
tested as pure functions on python-ldap-shaped entries, and the follow-up searches against
a stand-in of the one connection method they use (`search_ext_s`), answering as AD does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ldap
import pytest

from connectors.ldap import client as client_module
from connectors.ldap.client import DirectoryClient, ServerConfig
from connectors.ldap.errors import DirectoryIncomplete
from connectors.ldap.mapping import PRESETS, normalize_dn
from connectors.ldap.ranges import RangeError, ValueRange, first_ranges, merged, parse_range
from models.directory.read import ReadTarget, _read_groups
from models.entities import DirectoryConnector

GROUP = "CN=All Staff,OU=Groups,DC=corp,DC=example"
STAFF = [f"CN=Person {n},OU=Staff,DC=corp,DC=example".encode() for n in range(3200)]
MAX_VAL_RANGE = 1500


class RangedServer:
    """`search_ext_s` as Active Directory answers a base-scope read of `member;range=low-*`:
    at most MAX_VAL_RANGE values, the range named with the server's own spelling."""

    def __init__(self, members: list[bytes], spelling: str = "member;range") -> None:
        self.members = members
        self.spelling = spelling
        self.requests: list[tuple[str, int, list[str]]] = []

    def search_ext_s(
        self, base: str, scope: int, filterstr: str, attrlist: list[str], **kwargs: Any
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        self.requests.append((base, scope, attrlist))
        low = int(attrlist[0].split("=")[1].split("-")[0])
        return [(base, self.slice(low))]

    def slice(self, low: int) -> dict[str, list[bytes]]:
        values = self.members[low : low + MAX_VAL_RANGE]
        last = low + len(values) >= len(self.members)
        high = "*" if last else str(low + len(values) - 1)
        return {f"{self.spelling}={low}-{high}": values}


class StandInClient(DirectoryClient):
    """The group search answers with the given entries; follow-ups go to `server`."""

    def __init__(self, server: Any, entries: list[tuple[str, dict[str, list[bytes]]]]) -> None:
        super().__init__(ServerConfig(urls=("ldap://dc.corp.example",)))
        self._conn = server
        self.entries = entries

    def paged_search(self, *args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        yield self.entries


def _first_answer(server: RangedServer) -> dict[str, list[bytes]]:
    return {"cn": [b"All Staff"], "uSNChanged": [b"7"], **server.slice(0)}


def _read(server: Any, attrs: dict[str, list[bytes]]) -> list[str]:
    connector = DirectoryConnector(base_dn="DC=corp,DC=example", group_base_dn="", page_size=500)
    target = ReadTarget(connector, PRESETS["active_directory"], settings=None)  # type: ignore[arg-type]
    groups, _ = _read_groups(StandInClient(server, [(GROUP, attrs)]), target, "", [])
    return list(groups[normalize_dn(GROUP)].members)


def test_parse_range_reads_both_bounds_in_any_case():
    assert parse_range("member;range=0-1499") == ValueRange(
        "member;range=0-1499", "member", 0, 1499
    )
    found = parse_range("Member;Range=4500-*")
    assert found is not None and (found.attribute, found.low, found.high) == ("member", 4500, None)
    assert found.key == "Member;Range=4500-*"
    assert parse_range("member") is None and parse_range("member;binary") is None


@pytest.mark.parametrize(
    "key",
    [
        "member;range=abc",
        "member;range=1500-",
        "member;range=-1499",
        "member;range=3000-1499",
        "member;range=0-1499;range=1500-*",
        "member;range=\u0661-\u0662",  # Arabic-Indic digits: str.isdigit, not ASCII
    ],
)
def test_malformed_range_is_an_error(key):
    with pytest.raises(RangeError):
        parse_range(key)


def test_first_ranges_checks_the_values_against_the_range():
    assert first_ranges({"member": [b"cn=a"]}, ["member"]) == []
    with pytest.raises(RangeError, match="came with 2 values"):
        first_ranges({"member;range=0-1499": [b"cn=a", b"cn=b"]}, ["member"])
    with pytest.raises(RangeError, match="does not start"):
        first_ranges({"member;range=1500-*": [b"cn=a"]}, ["member"])


def test_merged_puts_the_full_list_under_the_plain_name():
    entry = {"cn": [b"g"], "Member;Range=0-1": [b"a", b"b"], "description": [b"d"]}
    assert merged(entry, {"member": [b"a", b"b", b"c"]}) == {
        "cn": [b"g"],
        "description": [b"d"],
        "member": [b"a", b"b", b"c"],
    }


def test_a_group_over_max_val_range_reads_all_its_members():
    """Failed before: the group read as having no members (`member;range=0-1499` only)."""
    server = RangedServer(STAFF, spelling="Member;Range")
    members = _read(server, _first_answer(server))
    assert members == [normalize_dn(dn.decode()) for dn in STAFF]
    assert server.requests == [
        (GROUP, ldap.SCOPE_BASE, ["member;range=1500-*"]),
        (GROUP, ldap.SCOPE_BASE, ["member;range=3000-*"]),
    ]


def test_a_small_group_sends_no_follow_up():
    server = RangedServer(STAFF[:3])
    assert _read(server, {"cn": [b"All Staff"], "member": STAFF[:3]}) == [
        normalize_dn(dn.decode()) for dn in STAFF[:3]
    ]
    assert server.requests == []


class Repeating(RangedServer):
    """Answers every follow-up with the first range again: it never advances."""

    def slice(self, low: int) -> dict[str, list[bytes]]:
        return super().slice(0)


class Endless(RangedServer):
    """Answers each follow-up with one more value and a bounded range, never `*`."""

    def slice(self, low: int) -> dict[str, list[bytes]]:
        if low == 0:
            return {f"member;range=0-{MAX_VAL_RANGE - 1}": STAFF[:MAX_VAL_RANGE]}
        return {f"member;range={low}-{low}": [b"CN=Again,DC=corp,DC=example"]}


class Vanishing(RangedServer):
    """Answers a follow-up without the attribute (an ACL, or the group emptied meanwhile)."""

    def slice(self, low: int) -> dict[str, list[bytes]]:
        return super().slice(0) if low == 0 else {}


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (Repeating(STAFF), "the server answered member;range=0-1499"),
        (Vanishing(STAFF), "carried no one range"),
        (Endless(STAFF), "did not end after 5 requests"),
    ],
)
def test_a_range_that_does_not_advance_fails_the_read_never_empties_the_group(
    server, message, monkeypatch
):
    monkeypatch.setattr(client_module, "MAX_RANGE_REQUESTS", 5)
    with pytest.raises(DirectoryIncomplete, match=message) as raised:
        _read(server, _first_answer(server))
    assert GROUP in str(raised.value)
    assert 1 <= len(server.requests) <= 5


def test_a_malformed_first_range_fails_the_read():
    entry = {"cn": [b"All Staff"], "member;range=0-x": STAFF[:10]}
    with pytest.raises(DirectoryIncomplete, match="is not one range") as raised:
        _read(RangedServer(STAFF), entry)
    assert GROUP in str(raised.value)
