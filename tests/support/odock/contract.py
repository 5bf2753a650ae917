"""The bridge's contract as odock-sync publishes it (webhooks/odock_openapi.py): a request or
answer is checked against the schema the document gives it, as Odock's implementers read it."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from flask import Flask, request

from webhooks.odock_openapi import document


def violations(schema: dict[str, Any], instance: Any) -> list[str]:
    """What in `instance` breaks `schema` (which may $ref the document's components)."""
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document()["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [_said(error) for error in validator.iter_errors(instance)]


def _said(error: jsonschema.ValidationError) -> str:
    """The error where it is; for a oneOf, why each branch refused it rather than the value."""
    where = "/".join(map(str, error.absolute_path)) or "(body)"
    if error.context:
        return f"{where}: fits none of {error.validator}: " + "; ".join(
            sorted({sub.message for sub in error.context})
        )
    return f"{where}: {error.message}"


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass
class ContractLog:
    """What odock-sync sent the stand-in that the document does not allow, one line each."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    broken: list[str] = field(default_factory=list)

    def add(self, found: list[str]) -> None:
        with self.lock:
            self.broken.extend(found)

    def take(self) -> list[str]:
        with self.lock:
            found, self.broken = self.broken, []
            return found


def watch(app: Flask, section: str, log: ContractLog) -> None:
    """Check every request `app` serves on a path of the document's `section` (x-gateway,
    x-management-plane) against that path's operation, before it is answered."""

    @app.before_request
    def conforms() -> None:
        paths = document()[section]
        for template, operations in paths.items():
            if _matches(template, request.path):
                found = request_violations(
                    operations.get(request.method.lower()),
                    headers=request.headers,
                    query=request.args,
                    body=request.get_data(cache=True),
                )
                log.add([f"{request.method} {request.path}: {line}" for line in found])


def request_violations(
    operation: dict[str, Any] | None, *, headers: Any, query: Any, body: bytes
) -> list[str]:
    """How a request breaks its operation: a missing or ill-formed parameter, a body that is
    not JSON or does not match the operation's schema, or an operation that is not there."""
    if operation is None:
        return ["no such operation in the document"]
    found: list[str] = []
    given = {"header": headers, "query": query}
    for parameter in operation.get("parameters", []):
        value = given[parameter["in"]].get(parameter["name"])
        if value is None:
            if parameter.get("required"):
                found.append(f"the {parameter['in']} {parameter['name']} is missing")
            continue
        if parameter["schema"].get("type") == "integer":
            value = int(value) if value.lstrip("-").isdigit() else value
        found += [f"{parameter['name']}: {line}" for line in violations(parameter["schema"], value)]
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        if not headers.get("Content-Type", "").startswith("application/json"):
            found.append("the body is not sent as application/json")
        try:
            parsed = json.loads(body)
        except ValueError:
            return [*found, "the body is not JSON"]
        found += violations(content["application/json"]["schema"], parsed)
    elif body:
        found.append("a body where the operation takes none")
    return found


def _matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None
