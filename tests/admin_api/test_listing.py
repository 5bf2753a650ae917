"""The Users table: keyset pagination, filters by role, status and team, and search."""

from __future__ import annotations

import pytest

from models.entities import Organisation
from models.enums import Role, TeamRole, UserStatus
from tests.admin_api.conftest import World
from tests.support import factories as f


def _emails(client, world: World, query: str = "", who: str = "admin") -> list[str]:
    response = client.get(f"/api/v1/users?{query}", headers=world.auth(who))
    assert response.status_code == 200, response.get_json()
    return [item["email"] for item in response.get_json()["items"]]


def test_pages_cover_every_user_once_in_a_stable_order(client, session, world: World) -> None:
    org = session.get_one(Organisation, world.org_a)
    for n in range(9):
        f.make_user(session, org, email=f"extra{n}@acme.test")
    session.commit()
    everyone = _emails(client, world, "limit=200")
    assert len(everyone) == 15
    seen, cursor, pages = [], "", 0
    while True:
        body = client.get(
            f"/api/v1/users?limit=4{'&cursor=' + cursor if cursor else ''}",
            headers=world.auth("admin"),
        ).get_json()
        seen += [item["email"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 4
    assert seen == everyone and pages == 4


def test_an_exactly_full_last_page_has_no_next_cursor(client, world: World) -> None:
    body = client.get("/api/v1/users?limit=6", headers=world.auth("admin")).get_json()
    assert len(body["items"]) == 6 and body["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("role=ORG_ADMIN", {"admin@acme.test"}),
        ("role=MANAGER", {"manager@acme.test"}),
        ("status=PENDING", {"pending@acme.test"}),
        ("status=REVOKED", {"gone@acme.test"}),
        ("role=USER&status=PENDING", {"pending@acme.test"}),
        ("team={beta}", {"outsider@acme.test"}),
        ("team={alpha}&role=USER", {"user@acme.test", "colleague@acme.test"}),
        ("team={gamma}", set()),
    ],
)
def test_filters(client, session, world: World, query, expected) -> None:
    org = session.get_one(Organisation, world.org_a)
    f.make_user(session, org, email="pending@acme.test", status=UserStatus.PENDING)
    f.make_user(session, org, email="gone@acme.test", status=UserStatus.REVOKED)
    session.commit()
    query = query.replace("team=", "team_id=").format(
        alpha=world.alpha, beta=world.beta, gamma=world.gamma
    )
    assert set(_emails(client, world, query)) == expected


def test_a_managers_team_filter_stays_inside_what_they_may_see(client, world: World) -> None:
    assert _emails(client, world, f"team_id={world.beta}", who="manager") == []
    assert set(_emails(client, world, f"team_id={world.alpha}", who="manager")) == {
        "manager@acme.test",
        "user@acme.test",
        "colleague@acme.test",
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("50%", {"fifty@acme.test"}),
        ("%", {"fifty@acme.test"}),
        ("_", {"under_score@acme.test"}),
        ("a_b", set()),
        ("\\", {"back@acme.test"}),
        ("ANN", {"ann@acme.test"}),
        ("acme.test", None),
        ("globex", set()),
        ("  ann  ", {"ann@acme.test"}),
        # Email and name are one search text joined by a separator: never found across it.
        ("testann", set()),
        ("test\x1fann", set()),
        ("test ann", set()),
    ],
)
def test_search_by_name_or_email_treats_like_metacharacters_literally(
    client, session, world: World, q, expected
) -> None:
    from urllib.parse import quote

    org = session.get_one(Organisation, world.org_a)
    f.make_user(session, org, email="fifty@acme.test", name="Deal at 50% off")
    f.make_user(session, org, email="under_score@acme.test", name="Underscore")
    f.make_user(session, org, email="back@acme.test", name="Back\\slash")
    f.make_user(session, org, email="ann@acme.test", name="Ann Example")
    f.make_user(session, org, email="axb@acme.test", name="Axb")
    session.commit()
    found = set(_emails(client, world, f"q={quote(q)}&limit=200"))
    if expected is None:  # every user of the organisation matches, none of the other
        assert len(found) == 11 and all(email.endswith("@acme.test") for email in found)
    else:
        assert found == expected


def test_search_combines_with_filters_and_pagination(client, session, world: World) -> None:
    org = session.get_one(Organisation, world.org_a)
    team = f.make_team(session, org, "Search")
    for n in range(5):
        person = f.make_user(session, org, email=f"match{n}@acme.test", role=Role.MANAGER)
        f.add_member(session, team, person, TeamRole.MEMBER)
    f.make_user(session, org, email="match9@acme.test")
    session.commit()
    query = f"q=match&role=MANAGER&team_id={team.id}"
    first = client.get(f"/api/v1/users?{query}&limit=2", headers=world.auth("admin")).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(
        f"/api/v1/users?{query}&cursor={first['next_cursor']}&limit=10",
        headers=world.auth("admin"),
    ).get_json()
    emails = [i["email"] for i in first["items"] + rest["items"]]
    assert sorted(emails) == [f"match{n}@acme.test" for n in range(5)]


def test_search_finds_exactly_what_is_in_the_email_or_the_lower_cased_name(session) -> None:
    """The one search text (email, separator, name) against the two fields searched apart:
    every short piece of either field, and every piece across their joint, with and without
    the separator."""
    from sqlalchemy import select

    from models.entities import User
    from models.queries.users import SEARCH_SEPARATOR, matching_search

    org = f.make_org(session)
    for email, name in [
        ("ann@acme.test", "Ann Example"),
        ("bob.smith@acme.test", "Bob SMITH"),
        ("x_y%z@acme.test", "50% Off\\Deal"),
        ("test@b.example", "Test B"),
    ]:
        f.make_user(session, org, email=email, name=name)
    session.commit()
    users = session.execute(select(User.email_key, User.name)).all()
    terms = {"", " ", "@", "%", "_", "\\", SEARCH_SEPARATOR, "testtest", "exampletest"}
    for key, name in users:
        for text in (key + SEARCH_SEPARATOR + name.lower(), key + name.lower(), key + " " + name):
            terms |= {text[i : i + n] for n in (1, 2, 3, 5) for i in range(len(text) - n + 1)}
    dialect = session.get_bind().dialect.name
    for term in sorted(terms):
        found = set(session.scalars(select(User.email_key).where(matching_search(term, dialect))))
        lowered = term.strip().lower()
        expected = {key for key, name in users if lowered in key or lowered in name.lower()}
        assert found == expected, repr(term)
