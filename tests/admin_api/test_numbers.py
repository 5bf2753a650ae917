"""Numbers in the admin API: where it documents a number, a body must hold a JSON number
(not "24", a fullwidth "24", " 24", "1e1", "nan" or "inf"), finite and in range, and a query-string
number is ASCII digits; anything else is a problem JSON 400 naming the field, and nothing
changes."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from tests.admin_api.conftest import World, assert_problem
from webhooks.body import RequestBody

# As JSON text: strings that Python's float() or int() would read, and JSON's non-numbers.
TEXT_NUMBERS = [
    '"24"',
    '"\\uff12\\uff14"',
    '" 24"',
    '"24 "',
    '"1e1"',
    '"1_0"',
    '"nan"',
    '"inf"',
    '"-inf"',
]
NOT_NUMBERS = [*TEXT_NUMBERS, "true", "NaN", "Infinity", "-Infinity", "1e400", "[24]"]
HOSTILE_VALUES: list[Any] = [
    "24",
    "\uff12\uff14",  # fullwidth digits
    " 24",
    "1e1",
    "1_0",
    "nan",
    "inf",
    True,
    float("nan"),
    float("inf"),
]


def _request_bodies() -> list[type[RequestBody]]:
    import webhooks.app  # noqa: F401  (imports every blueprint and its schemas)

    found: list[type[RequestBody]] = []
    pending = list(RequestBody.__subclasses__())
    while pending:
        schema = pending.pop()
        found.append(schema)
        pending.extend(schema.__subclasses__())
    return sorted(found, key=lambda s: f"{s.__module__}.{s.__qualname__}")


def _is_number(annotation: Any) -> bool:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_number(arg) for arg in typing.get_args(annotation))
    return annotation in (int, float)


NUMBER_FIELDS = [
    pytest.param(schema, name, id=f"{schema.__qualname__}.{name}")
    for schema in _request_bodies()
    for name, info in schema.model_fields.items()
    if _is_number(info.annotation)
]


def test_the_audit_finds_the_number_fields() -> None:
    named = {param.id for param in NUMBER_FIELDS}
    assert {"RotateSecret.keep_previous_hours", "ConnectorBody.connect_timeout"} <= named
    assert len(named) >= 20, sorted(named)


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
@pytest.mark.parametrize(("schema", "name"), NUMBER_FIELDS)
def test_every_number_field_of_every_request_body_wants_a_finite_json_number(
    schema: type[RequestBody], name: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as refused:
        schema.model_validate({name: value})
    assert any(error["loc"][:1] == (name,) for error in refused.value.errors()), refused.value


def _hook(client, world: World) -> dict[str, Any]:
    created = client.post(
        "/api/v1/notification-hooks",
        json={"name": "siem", "kind": "webhook", "target": "http://127.0.0.1:9/hook"},
        headers=world.auth("admin"),
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def _connector(client, world: World) -> dict[str, Any]:
    created = client.post(
        "/api/v1/directory/connectors",
        json={
            "name": "corp",
            "server_urls": ["ldap://127.0.0.1:1"],
            "base_dn": "dc=acme,dc=test",
            "connect_timeout": 5,
        },
        headers=world.auth("admin"),
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def _send(client, world: World, method: str, path: str, raw: str) -> Any:
    return client.open(
        path,
        method=method,
        data=raw.encode(),
        content_type="application/json",
        headers=world.auth("admin"),
    )


def _refused(response: Any, field: str, raw: str) -> None:
    problem = assert_problem(response, 400)
    if raw not in ("NaN", "Infinity", "-Infinity", "1e400"):  # not JSON we read at all
        named = [item.get("field") for item in problem.get("errors", [])]
        assert field in [*named, problem.get("field")], problem


@pytest.mark.parametrize("raw", [*NOT_NUMBERS, "721", "-1", "1e308"])
def test_keep_previous_hours_must_be_a_json_number_in_range(client, world: World, unchanged, raw):
    hook = _hook(client, world)
    unchanged()
    response = _send(
        client,
        world,
        "POST",
        f"/api/v1/notification-hooks/{hook['id']}/rotate-secret",
        f'{{"keep_previous_hours": {raw}}}',
    )
    _refused(response, "keep_previous_hours", raw)
    unchanged()


@pytest.mark.parametrize("field", ["connect_timeout", "search_timeout", "page_size"])
@pytest.mark.parametrize("raw", [*NOT_NUMBERS, "1e308", "-5"])
def test_connector_numbers_must_be_json_numbers_in_range(
    client, world: World, unchanged, field, raw
):
    connector = _connector(client, world)
    unchanged()
    response = _send(
        client,
        world,
        "PATCH",
        f"/api/v1/directory/connectors/{connector['id']}",
        f'{{"{field}": {raw}}}',
    )
    _refused(response, field, raw)
    unchanged()


def test_json_numbers_still_work(client, world: World) -> None:
    hook = _hook(client, world)
    rotated = client.post(
        f"/api/v1/notification-hooks/{hook['id']}/rotate-secret",
        json={"keep_previous_hours": 1.5},
        headers=world.auth("admin"),
    )
    assert rotated.status_code == 200, rotated.get_json()
    connector = _connector(client, world)
    edited = client.patch(
        f"/api/v1/directory/connectors/{connector['id']}",
        json={"connect_timeout": 2.5, "search_timeout": 30},
        headers=world.auth("admin"),
    )
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["connect_timeout"] == 2.5


@pytest.mark.parametrize(
    "value", ["%2024", "24%20", "%EF%BC%92%EF%BC%94", "%0924", "1e1", "0x10", "24.0"]
)
@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/invitations", "/api/v1/audit-events"])
def test_query_string_numbers_are_ascii_digits_only(client, world: World, path, value) -> None:
    response = client.get(f"{path}?limit={value}", headers=world.auth("admin"))
    assert assert_problem(response, 400)["field"] == "limit"
