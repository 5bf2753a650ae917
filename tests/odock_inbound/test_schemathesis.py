"""The Odock bridge's inbound API (/odock/v1) against its own OpenAPI document, with
schemathesis, as tests/admin_api/test_schemathesis.py does for the admin API: generated
requests for every operation with the organisation's odock token, with none and with a wrong
one, on the suite's database. No server error, every status code documented, every documented
response body matching its schema."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from connectors import signed_webhooks
from tests.odock_inbound.conftest import bridge

EXAMPLES = 10  # per operation and credential: a few seconds per run
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
GENERATION = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CREDENTIALS = {
    "token": None,  # the organisation's own, filled in by the test
    "none": {},
    "wrong": {"Authorization": "Bearer not-a-token"},
    "not-bearer": {"Authorization": "Basic b2RvY2s6b2RvY2s="},
}


@pytest.mark.parametrize(
    ("credential", "mode"),
    [(name, GenerationMode.POSITIVE) for name in CREDENTIALS]
    + [("token", GenerationMode.NEGATIVE)],
    ids=[*CREDENTIALS, "token-invalid-requests"],
)
def test_the_inbound_api_matches_its_openapi_document(
    app: Any, session: Any, settings: Any, client: Any, credential: str, mode: GenerationMode
) -> None:
    bridged = bridge(session, settings, client)
    headers = CREDENTIALS[credential]
    if headers is None:
        headers = bridged.auth
    api = schemathesis.openapi.from_wsgi("/odock/v1/openapi.json", app)
    failures: list[str] = []
    statuses: dict[str, set[int]] = defaultdict(set)
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(mode))
        @GENERATION
        def conforms(case: Any) -> None:
            signed = _signed(case, bridged.signing_secret) if credential == "token" else {}
            response = case.call_and_validate(headers={**headers, **signed}, checks=CHECKS)
            statuses[case.operation.label].add(response.status_code)

        try:
            conforms()
        except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; all reported
            failures.append(f"{operation.label}: {exc}")
    assert operations == 8
    assert failures == [], "\n\n".join(failures)
    if (credential, mode) == ("token", GenerationMode.POSITIVE):
        # Generated events seldom pass parse_event: one that does, sent twice (202, then 200)
        events = api["/events"]["POST"]
        event = {"type": "key.deleted", "id": str(uuid.uuid4()), "version": 1}
        for _ in range(2):
            case = events.Case(body=event, media_type="application/json")
            signed = _signed(case, bridged.signing_secret, msg_id="msg_schemathesis")
            response = case.call_and_validate(headers={**headers, **signed}, checks=CHECKS)
            statuses["POST /events"].add(response.status_code)
        assert {200, 202} <= statuses["POST /events"], statuses


def _signed(case: Any, secret: str, msg_id: str = "") -> dict[str, str]:
    """A change event signed as the management plane signs it, over the body as it is sent;
    other operations are not signed."""
    if case.operation.path != "/events" or not isinstance(case.body, dict):
        return {}
    raw = json.dumps(case.body).encode()
    case.body = json.loads(raw)
    return signed_webhooks.sign(secret, msg_id=msg_id or f"msg_{uuid.uuid4().hex}", body=raw)
