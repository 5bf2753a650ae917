"""Sorting and ordered string filters follow code points whatever the database's collation
(docs/scim.md, Sorting). Shown on PostgreSQL by giving the columns a language collation
(ICU `en-US`) for the length of one rolled-back transaction: under it "a" comes before "B"
and "é" before "f", which code point order (and the reference server) put the other way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from models.entities import Organisation, ScimUser
from models.queries import scim as queries
from tests.support import factories

LANGUAGE = "en-US-x-icu"
# (externalId, displayName): externalId is case-exact, displayName is compared lower-cased.
PEOPLE = [("b", "Zoe"), ("B", "émile"), ("a", "fred")]


@pytest.fixture
def language_collation(session: Session) -> Iterator[None]:
    """external_id and display_name under a language collation, undone afterwards."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite compares with its BINARY collation: code point order")
    wanted = text("SELECT count(*) FROM pg_collation WHERE collname = :name")
    if not session.scalar(wanted, {"name": LANGUAGE}):
        pytest.skip(f"this PostgreSQL has no {LANGUAGE} collation")
    for name, size in (("external_id", 255), ("display_name", 200)):
        column = f'{name} TYPE varchar({size}) COLLATE "{LANGUAGE}"'
        session.execute(text(f"ALTER TABLE scim_users ALTER COLUMN {column}"))
    try:
        yield
    finally:
        session.rollback()  # DDL is transactional on PostgreSQL


def _people(session: Session, org: Organisation) -> None:
    for external_id, display_name in PEOPLE:
        user = factories.make_user(session, org, email=f"{external_id}{len(display_name)}@x.test")
        scim_user = ScimUser(
            organisation_id=org.id,
            user_id=user.id,
            external_id=external_id,
            display_name=display_name,
            extra={},
        )
        scim_user.set_user_name(user.email)
        session.add(scim_user)
    session.flush()


def _search(session: Session, org: Organisation, **search: object) -> list[tuple[str, str]]:
    page = queries.search_users(session, org.id, queries.Search(**search))  # type: ignore[arg-type]
    return [(u.external_id or "", u.display_name or "") for u in page.items]


def test_sorting_follows_code_points_under_a_language_collation(
    session: Session, org: Organisation, language_collation: None
) -> None:
    _people(session, org)
    by_external_id = [e for e, _ in _search(session, org, sort_by="externalId")]
    assert by_external_id == ["B", "a", "b"]  # a language collation: a, b, B
    by_display_name = [d for _, d in _search(session, org, sort_by="displayName")]
    assert by_display_name == ["fred", "Zoe", "émile"]  # a language collation: émile first
    descending = _search(session, org, sort_by="displayName", descending=True)
    assert [d for _, d in descending] == ["émile", "Zoe", "fred"]


def test_ordered_filters_follow_code_points_under_a_language_collation(
    session: Session, org: Organisation, language_collation: None
) -> None:
    _people(session, org)
    after_f = _search(session, org, filter='displayName gt "f"', sort_by="displayName")
    assert [d for _, d in after_f] == ["fred", "Zoe", "émile"]  # "é" (U+00E9) is after "z"
    below_a = _search(session, org, filter='externalId lt "a"')
    assert [e for e, _ in below_a] == ["B"]  # "B" (U+0042) is before "a"
