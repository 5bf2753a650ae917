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


def test_every_operation_names_its_path_parameters(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        wanted = set(re.findall(r"{([a-z_]+)}", path))
        for method, spec in operations.items():
            named = {p["name"] for p in spec.get("parameters", []) if p["in"] == "path"}
            assert named == wanted, (method, path)
