"""The shared input guard on the admin API: each hostile value of issue 14 in a body or a
query string is a problem JSON 400 (RFC 9457) and changes nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.admin_api.conftest import World, assert_problem
from tests.support.hostile import HOSTILE_VALUES, PLACEHOLDER, with_hostile

# name: (method, path template, a body with one placeholder value)
WRITES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "create_user": ("POST", "/api/v1/users", {"email": "new@acme.test", "name": PLACEHOLDER}),
    "edit_user": ("PATCH", "/api/v1/users/{user}", {"name": PLACEHOLDER}),
    "revoke": ("POST", "/api/v1/users/{user}/revoke", {"reason": PLACEHOLDER}),
    "create_team": ("POST", "/api/v1/teams", {"name": PLACEHOLDER}),
    "set_member": ("PUT", "/api/v1/teams/{team}/members/{user}", {"role": PLACEHOLDER}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_hostile_bodies_are_400_and_change_nothing(client, world: World, unchanged, endpoint, case):
    method, template, body = WRITES[endpoint]
    path = template.format(user=world.users["colleague"], team=world.alpha)
    unchanged()
    response = client.open(
        path,
        method=method,
        data=with_hostile(body, case),
        content_type="application/json",
        headers=world.auth("admin"),
    )
    assert_problem(response, 400)
    unchanged()


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/users", "limit=%D9%A1%D9%A2"),  # "١٢": Arabic-Indic digits
        ("/api/v1/users", "limit=%C2%B2"),  # "²" (isdigit() says yes, int() says no)
        ("/api/v1/users", "limit=" + "9" * 5000),
        ("/api/v1/users", "limit=1_0"),
        ("/api/v1/users", "q=" + quote("ann\x00")),
        ("/api/v1/users", "q%00=x"),
        ("/api/v1/invitations", "q=" + quote("a\x00@acme.test")),
        ("/api/v1/invitations", "limit=%D9%A1%D9%A2"),
        ("/api/v1/reviews", "limit=" + "1" * 30),
    ],
)
def test_hostile_query_parameters_are_400(client, world: World, path, query) -> None:
    response = client.get(f"{path}?{query}", headers=world.auth("admin"))
    assert_problem(response, 400)


def test_a_team_name_longer_than_its_column_in_lower_case_is_400(client, world: World, unchanged):
    unchanged()
    response = client.post(
        "/api/v1/teams", json={"name": "İ" + "x" * 199}, headers=world.auth("admin")
    )
    assert_problem(response, 400, detail="lower case")
    unchanged()


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api/v1/users", "limit=1&limit=200"),
        ("GET", "/api/v1/users", "status=ACTIVE&q=a&status=REVOKED"),
        ("DELETE", "/api/v1/tokens/{own}", "revoke_own=false&revoke_own=true"),
        ("DELETE", "/api/v1/tokens/{own}", "revoke_own=true&revoke_own=false"),
    ],
)
def test_a_query_parameter_given_twice_is_400_and_changes_nothing(
    client, world: World, unchanged, method, path, query
) -> None:
    """Every reader takes a parameter's first value, a proxy or filter in front may take the
    last: a parameter given twice is refused, not silently read one way."""
    own = client.get("/api/v1/tokens", headers=world.auth("admin")).get_json()["items"]
    mine = next(t["id"] for t in own if t["user_email"] == "admin@acme.test")
    unchanged()
    response = client.open(
        f"{path.format(own=mine)}?{query}", method=method, headers=world.auth("admin")
    )
    body = assert_problem(response, 400)
    assert body["field"] == query.split("=")[0]
    unchanged()


@pytest.mark.parametrize(
    "name",
    # the last: "管理者" with a joiner inside, out of any context a joiner has (models.text)
    ["Ad\u200bmins", "\u202eAdmins", "Admins\u3164", "Ad\u200dmins", "\u7ba1\u7406\u200d\u8005"],
)
def test_a_team_name_with_an_invisible_character_is_400(client, world: World, unchanged, name):
    """A team's name is its key (SCIM groups, LDAP mappings and IdP events find a team by it):
    "Admins" with a zero-width or bidi character is another team that looks the same."""
    unchanged()
    response = client.post("/api/v1/teams", json={"name": name}, headers=world.auth("admin"))
    assert_problem(response, 400, detail="invisible")
    unchanged()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("jos\u00e9@acme.test", "jose\u0301@acme.test"),  # NFC, then NFD
        ("ann@b\u00fccher.test", "ann@xn--bcher-kva.test"),  # U-label, then A-label
        ("ann@b\u00fccher.test", "Ann@B\u00dcCHER.test"),
    ],
)
def test_another_spelling_of_a_persons_email_is_that_person(client, world: World, first, second):
    """One email key for every source (connectors.email_address): before, the NFD spelling
    and the A-label domain each made a second person (a non-ASCII capital did not)."""
    created = client.post(
        "/api/v1/users", json={"email": first, "name": "First"}, headers=world.auth("admin")
    )
    assert created.status_code == 201, created.get_json()
    again = client.post(
        "/api/v1/users", json={"email": second, "name": "Second"}, headers=world.auth("admin")
    )
    assert_problem(again, 409)


def test_an_email_in_fullwidth_letters_is_400(client, world: World, unchanged):
    """ "ann" in fullwidth letters reads as "ann" and has its key: refused, as an invisible
    character is (models.text.check_identifier)."""
    unchanged()
    response = client.post(
        "/api/v1/users",
        json={"email": "\uff41\uff4e\uff4e@acme.test", "name": "Ann"},
        headers=world.auth("admin"),
    )
    assert_problem(response, 400, detail="fullwidth")
    unchanged()
