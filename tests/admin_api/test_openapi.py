"""The served OpenAPI document is valid OpenAPI 3.1 and describes every admin API route."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

API_PREFIX = "/api/v1"
UNDOCUMENTED = {"/api/v1/openapi.json"}  # the document itself


def _registered(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX) or rule.rule in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix(API_PREFIX))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def test_the_document_is_valid_openapi_3_1(client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_validator_would_catch_a_broken_document(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    document["paths"]["/users"]["get"]["responses"] = "nope"
    try:
        validate(document)
    except OpenAPIValidationError:
        return
    raise AssertionError("a broken document passed validation")


def test_every_registered_route_is_documented_and_nothing_else(app, client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert documented == _registered(app)


def _references(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_references(value) for value in node))
    return set()


def test_every_reference_names_a_component_of_the_document(client) -> None:
    """A $ref to a missing component makes clients skip that body (schemathesis did, for
    PUT /key-policy and PUT /users/{id}/access-end)."""
    document = client.get("/api/v1/openapi.json").get_json()
    components = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert _references(document) - components == set()


def test_every_operation_names_its_path_parameters(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        wanted = set(re.findall(r"{([a-z_]+)}", path))
        for method, spec in operations.items():
            named = {p["name"] for p in spec.get("parameters", []) if p["in"] == "path"}
            assert named == wanted, (method, path)


def _conforms(document: dict, path: str, method: str, status: int, body: object) -> None:
    from jsonschema import Draft202012Validator

    response = document["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, (path, method, [e.message for e in errors][:3])


def test_answers_match_their_documented_schemas(client, session, world) -> None:
    from models.entities import Organisation, User
    from tests.support import factories as f

    org = session.get_one(Organisation, world.org_a)
    person = session.get_one(User, world.users["colleague"])
    key = f.make_key(session, org, owner=person)
    f.make_budget(session, org, person)
    f.make_quota(session, org, person)
    f.make_usage(session, org, person, key)
    session.commit()
    document = client.get("/api/v1/openapi.json").get_json()
    headers = world.auth("admin")
    uid, team = world.users["colleague"], world.alpha
    calls = [
        ("get", "/users", "/api/v1/users?limit=2", None, 200),
        ("post", "/users", "/api/v1/users", {"email": "n@acme.test", "name": "N"}, 201),
        ("get", "/me", "/api/v1/me", None, 200),
        ("get", "/users/{user_id}", f"/api/v1/users/{uid}", None, 200),
        ("patch", "/users/{user_id}", f"/api/v1/users/{uid}", {"name": "C"}, 200),
        ("post", "/users/{user_id}/revoke", f"/api/v1/users/{uid}/revoke", None, 200),
        ("post", "/users/{user_id}/reactivate", f"/api/v1/users/{uid}/reactivate", None, 200),
        ("get", "/teams", "/api/v1/teams", None, 200),
        ("post", "/teams", "/api/v1/teams", {"name": "Omega"}, 201),
        ("get", "/teams/{team_id}/members", f"/api/v1/teams/{team}/members", None, 200),
        (
            "put",
            "/teams/{team_id}/members/{user_id}",
            f"/api/v1/teams/{team}/members/{world.users['newcomer']}",
            {"role": "MEMBER"},
            200,
        ),
    ]
    for method, template, url, body, status in calls:
        response = client.open(url, method=method.upper(), json=body, headers=headers)
        assert response.status_code == status, (url, response.get_json())
        _conforms(document, template, method, status, response.get_json())
    detail = client.get(f"/api/v1/users/{uid}", headers=headers).get_json()
    assert detail["api_keys"] and detail["budgets"] and detail["usage"]["recent"]
    problem = client.get(
        "/api/v1/users/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12, headers=headers
    )
    _problem_conforms(document, problem.get_json())


def _problem_conforms(document: dict, body: object) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(document["components"]["schemas"]["Problem"])
    assert not list(validator.iter_errors(body))


def test_every_success_with_a_body_documents_its_schema(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, spec in operations.items():
            for status, response in spec["responses"].items():
                if status.startswith("2") and status != "204":
                    assert "content" in response, (method, path, status)
