"""The admin API against its own OpenAPI document, with schemathesis: generated requests for
every operation, as an admin and as a plain user, on the suite's database (SQLite or
PostgreSQL). No server error, every status code documented, every documented response body
matching its schema. (schemathesis' own pytest plugin does not run under pytest 9, so each
operation's strategy is driven with hypothesis here.)"""

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

from models.enums import Role
from tests.support import factories

EXAMPLES = 8  # per operation and role: under a minute for both roles, even on a loaded machine
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
GENERATION = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _bearer(session: Any, role: Role) -> dict[str, str]:
    """A token acting as a person of `role`, who is in a team (so team routes have data)."""
    org = factories.make_org(session)
    person = factories.make_user(session, org, role=role)
    team = factories.make_team(session, org)
    factories.add_member(session, team, person)
    token = factories.admin_token(session, org, person)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("role", [Role.ORG_ADMIN, Role.USER], ids=["admin", "user"])
def test_the_admin_api_matches_its_openapi_document(app: Any, session: Any, role: Role) -> None:
    headers = _bearer(session, role)
    api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
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
        except (Exception, BaseExceptionGroup) as exc:  # every operation tried; all reported
            failures.append(f"{operation.label}: {exc}")
    assert operations > 50
    assert failures == [], "\n\n".join(failures)
