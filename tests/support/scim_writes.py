"""What the SCIM write differentials share (tests/scim/test_differential_user_writes.py and
test_differential_group_writes.py): a request as sent to both servers, each server's
outcome, a difference between them, and the differences docs/scim.md lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.scim.payloads import PATCH_OP


@dataclass(frozen=True)
class Write:
    """One request; placeholders in braces (`{user:N}`…) stand for each server's values."""

    label: str  # what a KNOWN_DIFFERENCES table names
    method: str
    path: str
    body: Any = None
    raw: tuple[str, str] | None = None  # (content type, text) sent as is instead of JSON
    headers: tuple[tuple[str, str], ...] = field(default=())


@dataclass
class Outcome:
    status: int
    scim_type: str | None
    document: dict[str, Any] | None  # the resource read back (normalised), None when absent


@dataclass
class Difference:
    write: Write
    ours: Outcome
    theirs: Outcome

    def __str__(self) -> str:
        mine, theirs = self.ours.document or {}, self.theirs.document or {}
        differing = sorted(k for k in {*mine, *theirs} if mine.get(k) != theirs.get(k))
        documents = "; ".join(f"{k}: {mine.get(k)!r} / {theirs.get(k)!r}" for k in differing)
        return (
            f"{self.write.label}: {self.write.method} {self.write.path}\n"
            f"  ours {self.ours.status} {self.ours.scim_type}, "
            f"theirs {self.theirs.status} {self.theirs.scim_type}; {documents}"
        )


@dataclass(frozen=True)
class Listed:
    """A difference docs/scim.md lists (its table row), as each server answers it."""

    row: str
    ours: tuple[int, str | None]
    theirs: tuple[int, str | None]


def patch(*operations: dict[str, Any], schemas: Any = (PATCH_OP,)) -> dict[str, Any]:
    body: dict[str, Any] = {"Operations": list(operations)}
    if schemas is not None:
        body["schemas"] = list(schemas)
    return body


def op(name: str, path: str | None = None, value: Any = None, **more: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"op": name, **more}
    if path is not None:
        operation["path"] = path
    if value is not None:
        operation["value"] = value
    return operation


def outcome(write: Write, status: int, body: Any, document: dict[str, Any] | None) -> Outcome:
    if write.method == "PATCH" and status == 204:
        status = 200  # RFC 7644 section 3.5.2: 200 with the resource or 204 without
    scim_type = body.get("scimType") if status >= 400 and isinstance(body, dict) else None
    return Outcome(status, scim_type, document)


COMPOSED = " + "  # joins the labels of the operations of one PATCH made of several


def explained(difference: Difference, known: Mapping[str, Listed]) -> Listed | None:
    """The listed difference this one is (by its request's label, or one of the labels it
    is composed of, and both answers), if any."""
    ours, theirs = difference.ours, difference.theirs
    answers = ((ours.status, ours.scim_type), (theirs.status, theirs.scim_type))
    for label in (difference.write.label, *difference.write.label.split(COMPOSED)):
        listed = known.get(label)
        if listed is not None and (listed.ours, listed.theirs) == answers:
            return listed
    return None


def assert_only_listed(differences: list[Difference], known: Mapping[str, Listed]) -> None:
    """Every difference is a listed one, and every listed one was shown: a fix of one must
    take it out of the docs."""
    shown = {explained(d, known) for d in differences} - {None}
    unexplained = [d for d in differences if explained(d, known) is None]
    assert not unexplained, "\n".join(str(d) for d in unexplained)
    assert shown == set(known.values()), set(known.values()) - shown
