"""The Odock bridge's inbound API (/odock/v1) against its own OpenAPI document, with
schemathesis, as tests/admin_api/test_schemathesis.py does for the admin API: generated
requests for every operation with the organisation's odock token, with none and with a wrong
one, on the suite's database. No server error, every status code documented, every documented
response body matching its schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

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


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_the_inbound_api_matches_its_openapi_document(
    app: Any, session: Any, settings: Any, client: Any, credential: str
) -> None:
    bridged = bridge(session, settings, client)
    headers = CREDENTIALS[credential]
    if headers is None:
        headers = bridged.auth
    api = schemathesis.openapi.from_wsgi("/odock/v1/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @GENERATION
        def conforms(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            conforms()
        except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; all reported
            failures.append(f"{operation.label}: {exc}")
    assert operations == 8
    assert failures == [], "\n\n".join(failures)
