"""webhooks.route_credentials is the one table of which credentials each route takes, read by
the web worker before it answers `100 Continue`: it must say what the routes themselves do."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from webhooks.route_credentials import Credentials, credentials_of

PLACEHOLDER = re.compile(r"<(?:any\(([^,)]+)[^>]*|[^>]+)>")
SAMPLE = "6f1c1a52-0a7e-4d8e-9a52-4f1fbbd1c0de"  # a uuid, and a slug, token or name as well


def routes(app: Flask, kind: Credentials) -> list[tuple[str, str]]:
    """(method, path) of every route the table gives `kind`, its placeholders filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        path = PLACEHOLDER.sub(lambda found: found[1] or SAMPLE, rule.rule)
        if credentials_of(path) is kind:
            found += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_route_the_table_gives_a_bearer_token_refuses_a_request_without_one(
    app: Flask, client: FlaskClient
) -> None:
    """A guard (the table is new): a request without Authorization is a 401 on each, as the
    worker answers one that asks for 100 Continue."""
    checked = routes(app, Credentials.BEARER)
    assert len(checked) > 100
    for method, path in checked:
        answer = client.open(path, method=method, json={})
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_the_routes_the_table_calls_public_under_bearer_prefixes_take_no_token(
    client: FlaskClient,
) -> None:
    """A guard: the API documents are served to anyone; the worker must not refuse them."""
    for path in ("/api/v1/openapi.json", "/odock/v1/openapi.json"):
        assert credentials_of(path) is Credentials.NONE
        assert client.get(path).status_code == 200, path
