"""Bad input on every write endpoint: a clear problem JSON, the right status, no change."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.admin_api.conftest import World, assert_problem

# name: (method, path template, a valid body)
WRITES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "create_user": ("POST", "/api/v1/users", {"email": "new@acme.test", "name": "New"}),
    "edit_user": ("PATCH", "/api/v1/users/{user}", {"name": "Renamed"}),
    "approve": ("POST", "/api/v1/users/{user}/approve", {}),
    "decline": ("POST", "/api/v1/users/{user}/decline", {"reason": "unknown person"}),
    "revoke": ("POST", "/api/v1/users/{user}/revoke", {"reason": "left"}),
    "reactivate": ("POST", "/api/v1/users/{user}/reactivate", {}),
    "create_team": ("POST", "/api/v1/teams", {"name": "Delta"}),
    "set_member": ("PUT", "/api/v1/teams/{team}/members/{user}", {"role": "MEMBER"}),
}
RAW_BODIES = {
    "malformed_json": (b'{"name": "x",', "not valid JSON"),
    "not_utf8": (b'{"name": "\xff\xfe"}', "UTF-8"),
    "array": (b'[{"name": "x"}]', "JSON object"),
    "scalar": (b"42", "JSON object"),
    "deeply_nested": (b"[" * 100_000 + b"]" * 100_000, "nested"),
    "unknown_field": (b'{"name": "x", "is_superuser": true}', "schema"),
}


def _path(world: World, template: str) -> str:
    return template.format(user=world.users["colleague"], team=world.alpha)


@pytest.mark.parametrize("body_case", sorted(RAW_BODIES))
@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_unreadable_bodies_are_400(client, world: World, unchanged, endpoint, body_case) -> None:
    method, template, _ = WRITES[endpoint]
    raw, detail = RAW_BODIES[body_case]
    unchanged()
    response = client.open(
        _path(world, template),
        method=method,
        data=raw,
        content_type="application/json",
        headers=world.auth("admin"),
    )
    assert_problem(response, 400, detail=detail)
    unchanged()


# endpoint: [(case id, body, field named in the error)]
FIELD_ERRORS: dict[str, list[tuple[str, dict[str, Any], str]]] = {
    "create_user": [
        ("wrong_type", {"email": 42, "name": "x"}, "email"),
        ("missing_email", {"name": "x"}, "email"),
        ("bad_role", {"email": "a@acme.test", "name": "x", "role": "GOD"}, "role"),
        ("lowercase_role", {"email": "a@acme.test", "name": "x", "role": "user"}, "role"),
        ("super_admin", {"email": "a@acme.test", "name": "x", "role": "SUPER_ADMIN"}, "role"),
        ("bad_email", {"email": "not-an-email", "name": "x"}, "email"),
        ("blank_name", {"email": "a@acme.test", "name": "   "}, "name"),
        ("long_name", {"email": "a@acme.test", "name": "x" * 201}, "name"),
        ("nul_in_name", {"email": "a@acme.test", "name": "a\u0000b"}, "name"),
        ("control_in_email", {"email": "a\u0007@acme.test", "name": "x"}, "email"),
        ("null_name", {"email": "a@acme.test", "name": None}, "name"),
        ("bool_name", {"email": "a@acme.test", "name": True}, "name"),
    ],
    "edit_user": [
        ("wrong_type", {"name": ["x"]}, "name"),
        ("bad_role", {"role": "ROOT"}, "role"),
        ("bad_status", {"status": "DELETED"}, "status"),
        ("bad_email", {"email": "nope"}, "email"),
        ("nul_in_name", {"name": "\u0000"}, "name"),
        ("super_admin", {"role": "SUPER_ADMIN"}, "role"),
        ("role_as_number", {"role": 1}, "role"),
    ],
    "revoke": [
        ("wrong_type", {"reason": 5}, "reason"),
        ("long", {"reason": "x" * 501}, "reason"),
        ("nul", {"reason": "gone\u0000"}, "reason"),
    ],
    "decline": [("wrong_type", {"reason": {}}, "reason")],
    "approve": [("any_field", {"reason": "x"}, "reason")],
    "reactivate": [("any_field", {"force": True}, "force")],
    "create_team": [
        ("wrong_type", {"name": 7}, "name"),
        ("missing", {}, "name"),
        ("blank", {"name": "  "}, "name"),
        ("nul", {"name": "a\u0000"}, "name"),
    ],
    "set_member": [
        ("bad_role", {"role": "OWNER"}, "role"),
        ("wrong_type", {"role": ["MEMBER"]}, "role"),
    ],
}
FIELD_CASES = [
    pytest.param(endpoint, body, field, id=f"{endpoint}-{case}")
    for endpoint, cases in FIELD_ERRORS.items()
    for case, body, field in cases
]


@pytest.mark.parametrize(("endpoint", "body", "field"), FIELD_CASES)
def test_bad_fields_are_400_naming_the_field(
    client, world: World, unchanged, endpoint, body, field
) -> None:
    method, template, _ = WRITES[endpoint]
    unchanged()
    response = client.open(
        _path(world, template), method=method, json=body, headers=world.auth("admin")
    )
    problem = assert_problem(response, 400)
    named = [item["field"] for item in problem.get("errors", [])] + [problem.get("field")]
    assert any(field in str(name) for name in named), problem
    unchanged()


@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_an_oversized_body_is_413(client, world: World, unchanged, endpoint) -> None:
    method, template, _ = WRITES[endpoint]
    huge = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    unchanged()
    response = client.open(
        _path(world, template),
        method=method,
        data=huge,
        content_type="application/json",
        headers=world.auth("admin"),
    )
    assert_problem(response, 413)
    unchanged()


def _ids(world: World) -> dict[str, str]:
    return {
        "missing": str(uuid.uuid4()),
        "foreign": str(world.users["b_user"]),
        "foreign_team": str(world.gamma),
    }


USER_WRITES = ["edit_user", "approve", "decline", "revoke", "reactivate"]


@pytest.mark.parametrize("which", ["missing", "foreign"])
@pytest.mark.parametrize("endpoint", USER_WRITES)
def test_missing_and_foreign_user_ids_are_404(client, world: World, unchanged, endpoint, which):
    method, template, body = WRITES[endpoint]
    unchanged()
    path = template.format(user=_ids(world)[which])
    response = client.open(path, method=method, json=body, headers=world.auth("admin"))
    assert_problem(response, 404)
    unchanged()


@pytest.mark.parametrize(
    ("team", "user"),
    [
        ("missing", "own"),
        ("foreign_team", "own"),
        ("own", "missing"),
        ("own", "foreign"),
    ],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_missing_and_foreign_ids_in_memberships_are_404(
    client, world: World, unchanged, method, team, user
) -> None:
    ids = {**_ids(world), "own": str(world.users["colleague"])}
    team_id = str(world.alpha) if team == "own" else ids[team]
    path = f"/api/v1/teams/{team_id}/members/{ids[user]}"
    unchanged()
    body = {"role": "MEMBER"} if method == "PUT" else None
    response = client.open(path, method=method, json=body, headers=world.auth("admin"))
    assert_problem(response, 404)
    unchanged()


def test_removing_someone_who_is_not_a_member_is_404(client, world: World, unchanged) -> None:
    unchanged()
    path = f"/api/v1/teams/{world.alpha}/members/{world.users['outsider']}"
    assert_problem(client.delete(path, headers=world.auth("admin")), 404, detail="not a member")
    unchanged()


@pytest.mark.parametrize(
    "path",
    ["/api/v1/users/not-a-uuid", "/api/v1/users/123/approve", "/api/v1/teams/x/members"],
)
def test_malformed_ids_in_paths_are_404_problems(client, world: World, path) -> None:
    assert_problem(client.get(path, headers=world.auth("admin")), 404)


def test_unknown_routes_and_methods_are_problems(client, world: World) -> None:
    assert_problem(client.get("/api/v1/nothing-here", headers=world.auth("admin")), 404)
    response = client.delete(f"/api/v1/users/{world.users['user']}", headers=world.auth("admin"))
    assert_problem(response, 405)
    assert "PATCH" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("create_user", {"email": "USER@ACME.TEST", "name": "Clash"}),
        ("edit_user", {"email": "User@Acme.Test"}),
        ("create_team", {"name": "alpha"}),
    ],
)
def test_duplicates_are_409(client, world: World, unchanged, endpoint, body) -> None:
    method, template, _ = WRITES[endpoint]
    unchanged()
    response = client.open(
        _path(world, template), method=method, json=body, headers=world.auth("admin")
    )
    assert_problem(response, 409, detail="already exists")
    unchanged()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("role=GOD", "role"),
        ("status=gone", "status"),
        ("team_id=nope", "team_id"),
        ("cursor=zzz", "cursor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("q=" + "x" * 201, "q"),
    ],
)
def test_bad_query_parameters_are_400(client, world: World, params, field) -> None:
    response = client.get(f"/api/v1/users?{params}", headers=world.auth("admin"))
    assert assert_problem(response, 400)["field"] == field


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 33 + "]" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ('{"a": "' + "[" * 500 + '"}', False),  # brackets inside a string do not nest
        ('{"a": "\\"' + "{" * 500 + '"}', False),  # nor after an escaped quote
        ('{"a": ' * 40 + "1" + "}" * 40, True),
    ],
)
def test_nesting_depth_is_measured_outside_strings(text, deep) -> None:
    from webhooks.body import UnreadableBody, decode_json

    if deep:
        with pytest.raises(UnreadableBody, match="nested too deeply"):
            decode_json(text.encode())
    else:
        decode_json(text.encode())


def test_brackets_in_a_name_are_just_characters(client, world: World) -> None:
    name = "[" * 90 + "team" + "}" * 90
    response = client.post("/api/v1/teams", json={"name": name}, headers=world.auth("admin"))
    assert response.status_code == 201 and response.get_json()["name"] == name
