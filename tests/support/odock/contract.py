"""The bridge's contract as odock-sync publishes it (webhooks/odock_openapi.py): a request or
answer is checked against the schema the document gives it, as Odock's implementers read it."""

from __future__ import annotations

from typing import Any

import jsonschema

from webhooks.odock_openapi import document


def violations(schema: dict[str, Any], instance: Any) -> list[str]:
    """What in `instance` breaks `schema` (which may $ref the document's components)."""
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document()["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}
