"""Tenant isolation, from outside: organisation A's credentials against organisation B's ids.

Every route of the app is in one of three tables: ID_CASES (it takes an object id: A calls it
with B's id, for every method it allows, with a body that B's own credentials get through),
LISTS (it lists or searches: A's answer names nothing of B, whatever the filter), or EXEMPT
(why neither applies). A route added later and in none of them fails
test_every_route_is_exercised_or_exempt.

For each id case: A's answer is the protocol's "not found" (problem JSON on the admin API and
the Odock bridge, SCIM error JSON on /scim/v2, an error page on the console), never 2xx or 5xx;
the database is as it was (B's rows and every audit event); and then the same request with B's
own credentials is not a 404, so A's 404 came from the tenant check and not from a wrong id or
body. Built in tests/security/tenants.py.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from connectors import signed_webhooks
from models.actions import odock_reconcile, reviews, tokens
from models.base import utcnow
from models.db import SessionFactory
from models.entities import ApiToken, Budget, Organisation, Revocation, User
from models.enums import TokenScope
from models.settings import Settings
from tests.scim.payloads import okta_create_group, okta_create_user, okta_deactivate
from tests.security.tenants import (
    OKTA_SECRET_A,
    Tenant,
    build_attacker,
    build_target,
    copy_of,
    rename_credentials,
)
from tests.support import factories as f
from tests.support.apps import Apps
from tests.support.cleanup import empty_tables
from tests.support.copies import Rows, capture, copy_back, fresh_ids
from tests.support.state import change_checker, database_state, only_the_run_was_recorded

PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_TYPE = "application/scim+json"
FUTURE = (utcnow() + timedelta(days=30)).isoformat()
NOW = utcnow().isoformat()


@dataclass(frozen=True)
class Case:
    """One call: protocol, path and body with {names} of B's ids ({a_names} of A's own); the
    status A must get back. The control is the same call with B's credentials and B's ids in
    place of A's."""

    protocol: str  # admin | scim | console | odock
    path: str
    body: Any = None
    expected: int = 404


def admin(path: str, body: Any = None, **kw: Any) -> Case:
    return Case("admin", path, body, **kw)


def scim(path: str, body: Any = None, **kw: Any) -> Case:
    return Case("scim", path, body, **kw)


def console(path: str, body: Any = None, **kw: Any) -> Case:
    return Case("console", path, body, **kw)


def odock(path: str, body: Any = None, **kw: Any) -> Case:
    return Case("odock", path, body, **kw)


PATCH_NAME = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "displayName", "value": "Taken over"}],
}
KEY_BODY = {"type": "ORGANISATION", "name": "pushed", "masked_value": "sk-...0001", "version": 99}
BUDGET_BODY = {"owner_type": "ORG", "name": "pushed", "amount": "5.00", "version": 99}
QUOTA_BODY = {"owner_type": "ORG", "name": "pushed", "limit": 5, "version": 99}

# (rule, method) -> the calls A makes with B's ids. An object named in the body (a team to
# join, a member, a manager, a person to reassign to) is B's too where the route allows one.
ID_CASES: dict[tuple[str, str], list[Case]] = {
    # admin API
    ("/api/v1/audit-streams/<uuid:stream_id>", "GET"): [
        admin("/api/v1/audit-streams/{audit_stream}")
    ],
    ("/api/v1/audit-streams/<uuid:stream_id>", "PATCH"): [
        admin("/api/v1/audit-streams/{audit_stream}", {"enabled": False})
    ],
    ("/api/v1/audit-streams/<uuid:stream_id>", "DELETE"): [
        admin("/api/v1/audit-streams/{audit_stream}")
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>", "GET"): [
        admin("/api/v1/directory/connectors/{connector}")
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>", "PATCH"): [
        admin("/api/v1/directory/connectors/{connector}", {"name": "taken-over"})
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>", "DELETE"): [
        admin("/api/v1/directory/connectors/{connector}")
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>/runs", "GET"): [
        admin("/api/v1/directory/connectors/{connector}/runs")
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>/sync", "POST"): [
        admin("/api/v1/directory/connectors/{connector}/sync", {"dry_run": True})
    ],
    ("/api/v1/directory/connectors/<uuid:connector_id>/test", "POST"): [
        admin("/api/v1/directory/connectors/{connector}/test", {})
    ],
    ("/api/v1/directory/runs/<uuid:run_id>", "GET"): [admin("/api/v1/directory/runs/{run}")],
    ("/api/v1/directory/runs/<uuid:run_id>/approve", "POST"): [
        admin("/api/v1/directory/runs/{run}/approve", {})
    ],
    ("/api/v1/directory/runs/<uuid:run_id>/discard", "POST"): [
        admin("/api/v1/directory/runs/{run}/discard", {})
    ],
    ("/api/v1/event-deliveries/<uuid:delivery_id>", "GET"): [
        admin("/api/v1/event-deliveries/{event_delivery}")
    ],
    ("/api/v1/event-deliveries/<uuid:delivery_id>/reprocess", "POST"): [
        admin("/api/v1/event-deliveries/{event_delivery}/reprocess", {})
    ],
    ("/api/v1/event-hooks/signing-secrets/<secret_id>", "DELETE"): [
        admin("/api/v1/event-hooks/signing-secrets/{signing_secret}")
    ],
    ("/api/v1/findings/<uuid:finding_id>", "GET"): [admin("/api/v1/findings/{finding}")],
    ("/api/v1/findings/<uuid:finding_id>/acknowledge", "POST"): [
        admin("/api/v1/findings/{finding}/acknowledge", {})
    ],
    ("/api/v1/findings/<uuid:finding_id>/dismiss", "POST"): [
        admin("/api/v1/findings/{finding}/dismiss", {"note": "mine now"})
    ],
    ("/api/v1/findings/<uuid:finding_id>/reassign", "POST"): [
        admin("/api/v1/findings/{finding}/reassign", {"user_id": "{admin}", "note": "x"}),
        admin("/api/v1/findings/{finding}/reassign", {"team_id": "{team}"}),
    ],
    ("/api/v1/findings/<uuid:finding_id>/resolve", "POST"): [
        admin("/api/v1/findings/{finding}/resolve", {"note": "mine now"})
    ],
    ("/api/v1/invitations/<uuid:invitation_id>", "GET"): [
        admin("/api/v1/invitations/{invitation}")
    ],
    ("/api/v1/invitations/<uuid:invitation_id>/resend", "POST"): [
        admin("/api/v1/invitations/{invitation}/resend", {})
    ],
    ("/api/v1/invitations/<uuid:invitation_id>/revoke", "POST"): [
        admin("/api/v1/invitations/{invitation}/revoke", {})
    ],
    ("/api/v1/mass-change/batches/<uuid:batch_id>/approve", "POST"): [
        admin("/api/v1/mass-change/batches/{batch}/approve", {})
    ],
    ("/api/v1/mass-change/batches/<uuid:batch_id>/discard", "POST"): [
        admin("/api/v1/mass-change/batches/{batch}/discard", {})
    ],
    ("/api/v1/mass-change/holds/<uuid:hold_id>/approve", "POST"): [
        admin("/api/v1/mass-change/holds/{hold}/approve", {})
    ],
    ("/api/v1/mass-change/holds/<uuid:hold_id>/discard", "POST"): [
        admin("/api/v1/mass-change/holds/{hold}/discard", {})
    ],
    ("/api/v1/notification-deliveries/<uuid:delivery_id>", "GET"): [
        admin("/api/v1/notification-deliveries/{notification_delivery}")
    ],
    ("/api/v1/notification-deliveries/<uuid:delivery_id>/resend", "POST"): [
        admin("/api/v1/notification-deliveries/{notification_delivery}/resend", {})
    ],
    ("/api/v1/notification-hooks/<uuid:hook_id>", "GET"): [
        admin("/api/v1/notification-hooks/{hook}")
    ],
    ("/api/v1/notification-hooks/<uuid:hook_id>", "PATCH"): [
        admin("/api/v1/notification-hooks/{hook}", {"target": "http://127.0.0.1:2/mine"})
    ],
    ("/api/v1/notification-hooks/<uuid:hook_id>", "DELETE"): [
        admin("/api/v1/notification-hooks/{hook}")
    ],
    ("/api/v1/notification-hooks/<uuid:hook_id>/deliveries", "GET"): [
        admin("/api/v1/notification-hooks/{hook}/deliveries")
    ],
    ("/api/v1/notification-hooks/<uuid:hook_id>/rotate-secret", "POST"): [
        admin("/api/v1/notification-hooks/{hook}/rotate-secret", {"keep_previous_hours": 0})
    ],
    ("/api/v1/recertification/campaigns/<uuid:campaign_id>", "GET"): [
        admin("/api/v1/recertification/campaigns/{campaign}")
    ],
    ("/api/v1/recertification/findings/<uuid:finding_id>/decide", "POST"): [
        admin("/api/v1/recertification/findings/{recert_finding}/decide", {"decision": "revoke"})
    ],
    ("/api/v1/recertification/findings/<uuid:finding_id>/restore", "POST"): [
        admin("/api/v1/recertification/findings/{recert_finding}/restore", {"reason": "x"})
    ],
    ("/api/v1/reviews/<uuid:review_id>", "GET"): [admin("/api/v1/reviews/{review}")],
    ("/api/v1/reviews/<uuid:review_id>/acknowledge", "POST"): [
        admin("/api/v1/reviews/{review}/acknowledge", {})
    ],
    ("/api/v1/teams/<uuid:team_id>", "DELETE"): [admin("/api/v1/teams/{team}")],
    ("/api/v1/teams/<uuid:team_id>", "PATCH"): [admin("/api/v1/teams/{team}", {"name": "Spied"})],
    ("/api/v1/teams/<uuid:team_id>/members", "GET"): [admin("/api/v1/teams/{team}/members")],
    ("/api/v1/teams/<uuid:team_id>/members/<uuid:user_id>", "PUT"): [
        admin("/api/v1/teams/{team}/members/{owner}", {"role": "MANAGER"}),
        # B's person into A's own team, and A's person into B's team.
        admin("/api/v1/teams/{a_team}/members/{owner}", {"role": "MEMBER"}),
        admin("/api/v1/teams/{team}/members/{a_person}", {"role": "MEMBER"}),
    ],
    ("/api/v1/teams/<uuid:team_id>/members/<uuid:user_id>", "DELETE"): [
        admin("/api/v1/teams/{team}/members/{owner}"),
        admin("/api/v1/teams/{a_team}/members/{owner}"),
    ],
    ("/api/v1/tokens/<uuid:token_id>", "DELETE"): [
        admin("/api/v1/tokens/{token_0}"),
        admin("/api/v1/tokens/{token_1}"),
        admin("/api/v1/tokens/{token_2}"),
        admin("/api/v1/tokens/{token_3}"),
    ],
    ("/api/v1/users/<uuid:user_id>", "GET"): [admin("/api/v1/users/{owner}")],
    ("/api/v1/users/<uuid:user_id>", "PATCH"): [
        admin("/api/v1/users/{owner}", {"name": "Taken Over", "role": "ORG_ADMIN"})
    ],
    ("/api/v1/users/<uuid:user_id>/access-end", "PUT"): [
        admin("/api/v1/users/{owner}/access-end", {"access_ends_at": FUTURE})
    ],
    ("/api/v1/users/<uuid:user_id>/approve", "POST"): [admin("/api/v1/users/{leaver}/approve")],
    ("/api/v1/users/<uuid:user_id>/decline", "POST"): [admin("/api/v1/users/{leaver}/decline")],
    ("/api/v1/users/<uuid:user_id>/reactivate", "POST"): [
        admin("/api/v1/users/{leaver}/reactivate", {})
    ],
    ("/api/v1/users/<uuid:user_id>/revocation-preview", "GET"): [
        admin("/api/v1/users/{owner}/revocation-preview")
    ],
    ("/api/v1/users/<uuid:user_id>/revoke", "POST"): [
        admin("/api/v1/users/{owner}/revoke", {"reason": "taken over"})
    ],
    # console (A's signed-in admin, with its own session's CSRF token)
    ("/console/event-deliveries/<uuid:delivery_id>/reprocess", "POST"): [
        console("/console/event-deliveries/{event_delivery}/reprocess", {})
    ],
    ("/console/findings/<uuid:finding_id>", "GET"): [console("/console/findings/{finding}")],
    ("/console/findings/<uuid:finding_id>/acknowledge", "POST"): [
        console("/console/findings/{finding}/acknowledge", {"note": "mine"})
    ],
    ("/console/findings/<uuid:finding_id>/reassign", "POST"): [
        console("/console/findings/{finding}/reassign", {"user_id": "{admin}"})
    ],
    ("/console/findings/<uuid:finding_id>/resolve", "POST"): [
        console("/console/findings/{finding}/resolve", {"note": "mine"})
    ],
    ("/console/holds/batches/<uuid:batch_id>/approve", "POST"): [
        console("/console/holds/batches/{batch}/approve", {})
    ],
    ("/console/holds/batches/<uuid:batch_id>/discard", "POST"): [
        console("/console/holds/batches/{batch}/discard", {})
    ],
    ("/console/notification-deliveries/<uuid:delivery_id>/resend", "POST"): [
        console("/console/notification-deliveries/{notification_delivery}/resend", {})
    ],
    ("/console/people/<uuid:user_id>", "GET"): [console("/console/people/{owner}")],
    ("/console/people/<uuid:user_id>/revoke", "POST"): [
        console("/console/people/{owner}/revoke", {"reason": "taken over"})
    ],
    ("/console/recertification/<uuid:campaign_id>", "GET"): [
        console("/console/recertification/{campaign}")
    ],
    ("/console/recertification/findings/<uuid:finding_id>/decide", "POST"): [
        console("/console/recertification/findings/{recert_finding}/decide", {"decision": "revoke"})
    ],
    ("/console/reviews/<uuid:review_id>", "GET"): [console("/console/reviews/{review}")],
    ("/console/reviews/<uuid:review_id>/acknowledge", "POST"): [
        console("/console/reviews/{review}/acknowledge", {})
    ],
    ("/console/runs/<uuid:run_id>", "GET"): [console("/console/runs/{run}")],
    ("/console/runs/<uuid:run_id>/approve", "POST"): [console("/console/runs/{run}/approve", {})],
    ("/console/runs/<uuid:run_id>/discard", "POST"): [console("/console/runs/{run}/discard", {})],
    # SCIM
    ("/scim/v2/Users/<id:scim_id>", "GET"): [scim("/scim/v2/Users/{scim_user}")],
    ("/scim/v2/Users/<id:scim_id>", "PUT"): [
        scim("/scim/v2/Users/{scim_user}", okta_create_user("taken@over.test", "00uTaken"))
    ],
    ("/scim/v2/Users/<id:scim_id>", "PATCH"): [
        scim("/scim/v2/Users/{scim_user}", okta_deactivate())
    ],
    ("/scim/v2/Users/<id:scim_id>", "DELETE"): [scim("/scim/v2/Users/{scim_user}")],
    ("/scim/v2/Groups/<id:group_id>", "GET"): [scim("/scim/v2/Groups/{scim_group}")],
    ("/scim/v2/Groups/<id:group_id>", "PUT"): [
        scim("/scim/v2/Groups/{scim_group}", okta_create_group("Taken over"))
    ],
    ("/scim/v2/Groups/<id:group_id>", "PATCH"): [scim("/scim/v2/Groups/{scim_group}", PATCH_NAME)],
    ("/scim/v2/Groups/<id:group_id>", "DELETE"): [scim("/scim/v2/Groups/{scim_group}")],
    # The Odock bridge: object ids are the management plane's, one space for every
    # organisation, so an id another organisation holds is a 409 (docs/odock.md), not a 404.
    ("/odock/v1/<any(keys, budgets, quotas):collection>/<uuid:object_id>", "PUT"): [
        odock("/odock/v1/keys/{key}", KEY_BODY, expected=409),
        odock("/odock/v1/budgets/{budget}", BUDGET_BODY, expected=409),
        odock("/odock/v1/quotas/{quota}", QUOTA_BODY, expected=409),
    ],
    ("/odock/v1/<any(keys, budgets, quotas):collection>/<uuid:object_id>", "DELETE"): [
        odock("/odock/v1/keys/{key}?version=99", expected=409),
        odock("/odock/v1/budgets/{budget}?version=99", expected=409),
        odock("/odock/v1/quotas/{quota}?version=99", expected=409),
    ],
}

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MEMBER_OF_B = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "add", "path": "members", "value": [{"value": "{scim_user}"}]}],
}
MANAGED_BY_B = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "{scim_user}"}],
}


def _with_manager(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, ENTERPRISE: {"manager": {"value": "{scim_user}"}}}


def _with_members(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "members": [{"value": "{scim_user}"}]}


# (rule, method) -> calls on A's own objects (or creating one) whose body names B's object:
# refused in the protocol's format (SCIM: 400 invalidValue, RFC 7644 section 3.12), nothing
# stored. The control: B naming its own object in the same body gets through.
BODY_CASES: dict[tuple[str, str], list[Case]] = {
    ("/api/v1/invitations", "POST"): [
        admin(
            "/api/v1/invitations",
            {"email": "spy@acme.test", "teams": [{"team_id": "{team}"}]},
            expected=404,
        )
    ],
    ("/scim/v2/Groups", "POST"): [
        scim("/scim/v2/Groups", _with_members(okta_create_group("Spies")), expected=400)
    ],
    ("/scim/v2/Users", "POST"): [
        scim(
            "/scim/v2/Users",
            _with_manager(okta_create_user("spy@acme.test", "00uSpy")),
            expected=400,
        )
    ],
    ("/scim/v2/Groups/<id:group_id>", "PATCH"): [
        scim("/scim/v2/Groups/{a_scim_group}", MEMBER_OF_B, expected=400)
    ],
    ("/scim/v2/Groups/<id:group_id>", "PUT"): [
        scim(
            "/scim/v2/Groups/{a_scim_group}",
            _with_members(okta_create_group("Acme Engineers")),
            expected=400,
        )
    ],
    ("/scim/v2/Users/<id:scim_id>", "PATCH"): [
        scim("/scim/v2/Users/{a_scim_user}", MANAGED_BY_B, expected=400)
    ],
    ("/scim/v2/Users/<id:scim_id>", "PUT"): [
        scim(
            "/scim/v2/Users/{a_scim_user}",
            _with_manager(okta_create_user("scim@acme.test", "00uA1")),
            expected=400,
        )
    ],
    ("/odock/v1/usage", "POST"): [
        odock(
            "/odock/v1/usage",
            {"records": [{"id": "u1", "occurred_at": NOW, "api_key_id": "{key}", "cost": "1"}]},
            expected=422,
        ),
        odock(
            "/odock/v1/usage",
            {"records": [{"id": "u2", "occurred_at": NOW, "user_id": "{owner}"}]},
            expected=422,
        ),
    ],
}

# Every filter and search parameter the admin API and the console read, naming B's objects.
FILTERS = [
    "",
    "q={owner_email}",
    "q={team_name}",
    "user_id={owner}",
    "user_id={leaver}",
    "team_id={team}",
    "review_id={review}",
    "finding_id={finding}",
    "campaign_id={campaign}",
    "batch_id={batch}",
    "hook_id={hook}",
    "delivery_id={notification_delivery}",
    "target_id={owner}",
    "target_id={leaver}",
    "actor_user_id={admin}",
    "status=held",
    "status=open",
    "status=pending",
    "state=open",
]
ADMIN_LISTS = [
    "/api/v1/audit-events",
    "/api/v1/audit-streams",
    "/api/v1/directory/connectors",
    "/api/v1/event-deliveries",
    "/api/v1/event-hooks",
    "/api/v1/invitations",
    "/api/v1/invitations/leaver-policy",
    "/api/v1/key-policy",
    "/api/v1/mass-change/holds",
    "/api/v1/mass-change/settings",
    "/api/v1/me",
    "/api/v1/notification-hooks",
    "/api/v1/recertification/campaigns",
    "/api/v1/recertification/policy",
    "/api/v1/reviews",
    "/api/v1/sign-in/oidc",
    "/api/v1/source-health",
    "/api/v1/teams",
    "/api/v1/tokens",
    "/api/v1/users",
]
CONSOLE_LISTS = [
    "/console",
    "/console/audit",
    "/console/deliveries",
    "/console/departures",
    "/console/holds",
    "/console/recertification",
    "/console/reviews",
    "/console/runs",
]
SCIM_FILTERS = [
    'userName eq "{owner_email}"',
    'userName eq "{scim_email}"',
    'userName sw "scim0@"',
    'externalId eq "00uB0"',
    'id eq "{scim_user}"',
    'emails.value co "globex"',
    'emails[value eq "{scim_email}"]',
    'displayName eq "Globex Engineers"',
    'members.value eq "{scim_user}"',
    'members[value eq "{scim_user}"]',
    f'{ENTERPRISE}:manager.value eq "{{scim_user}}"',
    "meta.created pr",
]
SCIM_LISTS = ["/scim/v2/Users", "/scim/v2/Groups"]
SCIM_SEARCHES = ["/scim/v2/.search", "/scim/v2/Users/.search", "/scim/v2/Groups/.search"]

EXEMPT: dict[tuple[str, str] | str, str] = {
    # Public, the same for every organisation, or no tenant in it.
    "/healthz": "liveness; no organisation's data",
    "/readyz": "readiness; no organisation's data",
    "/metrics": "process figures, no organisation's data (tests/ops)",
    "/static/<path:filename>": "static files",
    "/console/static/<path:filename>": "static files",
    "/api/v1/openapi.json": "the API's description, the same for everyone",
    "/odock/v1/openapi.json": "the bridge's description, the same for everyone",
    "/scim/v2/Schemas": "SCIM discovery, the same for every organisation",
    "/scim/v2/Schemas/<schema_id>": "SCIM discovery, the same for every organisation",
    "/scim/v2/ResourceTypes": "SCIM discovery, the same for every organisation",
    "/scim/v2/ResourceTypes/<name>": "SCIM discovery, the same for every organisation",
    "/scim/v2/ServiceProviderConfig": "SCIM discovery, the same for every organisation",
    "/scim/v2/Bulk": "501 for everyone (bulk unsupported): test_bulk_and_me_are_refused",
    "/scim/v2/Me": "501 for everyone: test_bulk_and_me_are_refused",
    "/scim/v2/Me/<path:_rest>": "501 for everyone: test_bulk_and_me_are_refused",
    # Sign-in and links whose token is the credential and names its own object.
    "/console/sign-in": "takes an admin token; the session is the token's organisation",
    "/console/sign-out": "ends the caller's own session",
    "/console/oidc/sign-in": "starts the organisation's own provider flow (tests/console)",
    "/console/oidc/callback": "state-bound callback (tests/console/test_oidc_callback_refusals)",
    "/enroll/<token>": "the link's token is the credential and names its invitation; the "
    "signed-in email must be the invited one (tests/invitations)",
    "/enroll/<token>/sign-in": "the link's token is the credential (tests/invitations)",
    "/enroll/oidc/callback": "state-bound callback (tests/invitations/test_oidc_binding)",
    "/enroll/oidc/callback/<callback_id>": "state-bound callback of one provider, the id "
    "checked against the state's (tests/invitations/test_oidc_callbacks)",
    "/console/oidc/callback/<callback_id>": "state-bound callback of one provider, the id "
    "checked against the state's (tests/console/test_oidc_mix_up)",
    "/reviews/acknowledge/<token>": "a signed link naming its review (tests/reviews)",
    # Receivers: a slug and that organisation's secret: test_receivers_take_only_their_secrets.
    "/hooks/events/<slug>": "test_receivers_take_only_their_secrets",
    "/hooks/okta/<slug>": "test_receivers_take_only_their_secrets",
    "/hooks/enrollment/<org_slug>": "Odock's platform secret; a token of another organisation "
    "is unknown (tests/invitations/test_enrollment_hook.py)",
    "/odock/v1/events": "test_receivers_take_only_their_secrets (A's token, B's secret)",
    # Writes of the caller's own organisation that name no object: the token decides which.
    ("/api/v1/audit-streams", "POST"): "creates in the token's organisation",
    ("/api/v1/directory/connectors", "POST"): "creates in the token's organisation",
    ("/api/v1/event-hooks/okta", "PUT"): "the token's organisation's setting",
    ("/api/v1/event-hooks/okta", "DELETE"): "the token's organisation's setting",
    ("/api/v1/event-hooks/signing-secrets", "POST"): "creates in the token's organisation",
    ("/api/v1/invitations/leaver-policy", "PUT"): "the token's organisation's setting",
    ("/api/v1/invitations/refresh", "POST"): "the token's organisation's invitations",
    ("/api/v1/key-policy", "PUT"): "the token's organisation's setting",
    ("/api/v1/mass-change/settings", "PUT"): "the token's organisation's setting",
    ("/api/v1/notification-hooks", "POST"): "creates in the token's organisation",
    ("/api/v1/recertification/campaigns", "POST"): "opens the token's organisation's campaign",
    ("/api/v1/recertification/policy", "PUT"): "the token's organisation's setting",
    ("/api/v1/sign-in/oidc", "PUT"): "the token's organisation's setting",
    ("/api/v1/sign-in/oidc", "DELETE"): "the token's organisation's setting",
    ("/api/v1/source-health/settings", "PATCH"): "the token's organisation's setting",
    ("/api/v1/teams", "POST"): "creates in the token's organisation",
    ("/api/v1/tokens", "POST"): "creates in the token's organisation, for the caller",
    ("/api/v1/users", "POST"): "creates in the token's organisation",
}


def listed_routes() -> set[tuple[str, str]]:
    return {
        *((path, "GET") for path in ADMIN_LISTS + CONSOLE_LISTS + SCIM_LISTS),
        *((path, "POST") for path in SCIM_SEARCHES),
    }


def test_every_route_is_exercised_or_exempt(app: Flask) -> None:
    """A new route fails here until it gets an id case, a list check or a reason."""
    covered = {*ID_CASES, *BODY_CASES, *listed_routes()}
    missing = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            key = (rule.rule, method)
            if key not in covered and key not in EXEMPT and rule.rule not in EXEMPT:
                missing.append(key)
    assert not missing, f"routes neither exercised nor exempt: {missing}"
    routes = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods or ()}
    stale = [key for key in (*ID_CASES, *BODY_CASES) if key not in routes]
    assert not stale, f"cases for routes the app no longer has: {stale}"


@dataclass
class Tenants:
    a: Tenant
    b: Tenant
    client: FlaskClient
    sessions: SessionFactory

    def values(self, *, control: bool) -> dict[str, str]:
        values = {**self.b.ids}
        values.update({f"a_{k}": self.b.ids[k] if control else v for k, v in self.a.ids.items()})
        values["owner_email"] = self.b.emails[1]
        values["scim_email"] = "scim0@" + self.b.emails[0].split("@")[1]
        values["team_name"] = "Globex Research"
        return values

    def fill(self, template: Any, *, control: bool = False) -> Any:
        """The template (a path, or a body of strings, lists and objects) with each {name}
        replaced by that id; control: B's own ids where A's ({a_name}) stood."""
        values = self.values(control=control)
        if isinstance(template, str):
            return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
        if isinstance(template, list):
            return [self.fill(item, control=control) for item in template]
        if isinstance(template, dict):
            return {k: self.fill(v, control=control) for k, v in template.items()}
        return template


@pytest.fixture(scope="module")
def built_tenants(
    engine: Engine, sessions: SessionFactory, settings: Settings, apps: Apps
) -> tuple[Tenant, Tenant, Rows]:
    """A and B built once per file through the domain operations and their own credentials
    (about 500 statements: a second or more a test), and their committed rows; the database
    is left empty."""
    empty_tables(engine)
    app = apps.for_settings(settings)
    with sessions() as session:
        a = build_attacker(session, settings, app)
        b = build_target(session, settings, app)
    rows = capture(engine)
    empty_tables(engine)
    return a, b, rows


@pytest.fixture
def tenants(
    session: Session,
    engine: Engine,
    app: Flask,
    sessions: SessionFactory,
    built_tenants: tuple[Tenant, Tenant, Rows],
) -> Tenants:
    """A copy of A and B for this test, from empty tables: new ids, token secrets and slugs
    (nothing a process cached of an earlier copy applies), its times moved to just before
    the test."""
    a, b, rows = built_tenants
    renames = fresh_ids(rows)
    rename_credentials(a, renames)
    rename_credentials(b, renames)
    copy_back(engine, rows, renames)
    return Tenants(copy_of(a, renames, app), copy_of(b, renames, app), app.test_client(), sessions)


def call(tenants: Tenants, case: Case, method: str, who: Tenant, *, control: bool = False) -> Any:
    """The case's request with `who`'s credentials of the case's protocol."""
    path = tenants.fill(case.path, control=control)
    body = tenants.fill(case.body, control=control)
    if case.protocol == "console":
        form = {k: str(v) for k, v in (body or {}).items()}
        if method == "POST":
            form["csrf"] = who.csrf()
        return who.console.open(path, method=method, data=form if method == "POST" else None)
    headers = who.bearer(case.protocol)
    if case.protocol == "scim":
        headers |= {"Accept": SCIM_TYPE, "Content-Type": SCIM_TYPE}
        data = None if body is None else json.dumps(body)
        return tenants.client.open(path, method=method, data=data, headers=headers)
    return tenants.client.open(path, method=method, json=body, headers=headers)


def assert_refused(answer: Any, case: Case) -> None:
    """The protocol's own error document with the case's status; no trace, nothing of B."""
    text = answer.get_data(as_text=True)
    assert answer.status_code == case.expected, (answer.status_code, text)
    assert "Traceback" not in text
    if case.protocol == "scim":
        assert answer.mimetype == SCIM_TYPE, answer.mimetype
        assert answer.json["schemas"] == [SCIM_ERROR] and answer.json["status"] == str(
            case.expected
        ), answer.json
    elif case.protocol == "console":
        assert answer.mimetype == "text/html"
    else:
        assert answer.mimetype == "application/problem+json", answer.mimetype
        assert answer.json["status"] == case.expected and answer.json["detail"], answer.json


def _params(table: dict[tuple[str, str], list[Case]]) -> list[Any]:
    return [
        pytest.param(method, case, id=f"{method} {case.path}#{n}")
        for (_, method), cases in table.items()
        for n, case in enumerate(cases)
    ]


@pytest.mark.parametrize(("method", "case"), _params(ID_CASES) + _params(BODY_CASES))
def test_another_organisations_object_is_out_of_reach(
    tenants: Tenants, method: str, case: Case
) -> None:
    if method == "GET":  # B has read it first: whatever a read keeps (caches) is warm
        warm = call(tenants, case, method, tenants.b, control=True)
        assert warm.status_code in (200, 303), (warm.status_code, warm.get_data(as_text=True))
    unchanged = change_checker(tenants.sessions)
    unchanged()
    answer = call(tenants, case, method, tenants.a)
    assert_refused(answer, case)
    unchanged()
    asked = json.dumps([tenants.fill(case.path), tenants.fill(case.body)])
    assert_nothing_of_b(tenants, answer, asked)
    # The control: B itself gets past the lookup with the same call on its own objects.
    mine = call(tenants, case, method, tenants.b, control=True)
    assert mine.status_code != 404 and mine.status_code < 500, (
        mine.status_code,
        mine.get_data(as_text=True),
    )
    if case in BODY_CASES.get((_rule_of(case), method), []):
        assert mine.status_code < 300, (mine.status_code, mine.get_data(as_text=True))


def _rule_of(case: Case) -> str:
    for (rule, _), cases in (*ID_CASES.items(), *BODY_CASES.items()):
        if case in cases:
            return rule
    raise AssertionError(case)


def _b_only(tenants: Tenants) -> set[str]:
    """Markers of B that A's answers must never carry (A's own ids may be echoed)."""
    return tenants.b.markers() - set(tenants.a.ids.values())


def assert_nothing_of_b(tenants: Tenants, answer: Any, asked: str) -> None:
    """No id or email of B in the answer, but those the request itself named (an error may
    echo the id it did not find)."""
    text = answer.get_data(as_text=True)
    assert answer.status_code < 500 and "Traceback" not in text, (asked, answer.status_code)
    leaked = sorted(m for m in _b_only(tenants) if m in text and m not in unquote_plus(asked))
    assert not leaked, (asked, answer.status_code, leaked)


def test_lists_and_searches_never_show_another_organisation(tenants: Tenants) -> None:
    """Every list of the admin API and the console, with every filter naming B's objects."""
    for path in ADMIN_LISTS:
        for query in FILTERS:
            url = f"{path}?{tenants.fill(query)}" if query else path
            answer = tenants.client.get(url, headers=tenants.a.bearer("admin"))
            assert_nothing_of_b(tenants, answer, url)
            if not query:
                assert answer.status_code == 200, (url, answer.get_data(as_text=True))
    for path in CONSOLE_LISTS:
        for query in FILTERS:
            url = f"{path}?{tenants.fill(query)}" if query else path
            answer = tenants.a.console.get(url)
            assert_nothing_of_b(tenants, answer, url)
            if not query:
                assert answer.status_code == 200, (url, answer.get_data(as_text=True))


def test_scim_filters_naming_another_organisation_find_nothing(tenants: Tenants) -> None:
    headers = {**tenants.a.bearer("scim"), "Accept": SCIM_TYPE}
    for expression in SCIM_FILTERS:
        expression = tenants.fill(expression)
        for path in SCIM_LISTS:
            url = f"{path}?{urlencode({'filter': expression})}"
            answer = tenants.client.get(url, headers=headers)
            assert_nothing_of_b(tenants, answer, url)
            if answer.status_code == 200:
                assert _ids(answer) <= set(tenants.a.ids.values()), (url, answer.json)
        for path in SCIM_SEARCHES:
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": expression,
            }
            answer = tenants.client.post(
                path, data=json.dumps(body), headers={**headers, "Content-Type": SCIM_TYPE}
            )
            assert_nothing_of_b(tenants, answer, f"{path} {expression}")
            if answer.status_code == 200:
                assert _ids(answer) <= set(tenants.a.ids.values()), (path, answer.json)
    # Unfiltered, A sees its own and only its own.
    users = tenants.client.get("/scim/v2/Users", headers=headers)
    assert [u["id"] for u in users.json["Resources"]] == [tenants.a.ids["scim_user"]]
    groups = tenants.client.get("/scim/v2/Groups", headers=headers)
    assert [g["id"] for g in groups.json["Resources"]] == [tenants.a.ids["scim_group"]]
    assert_nothing_of_b(tenants, users, "/Users")
    assert_nothing_of_b(tenants, groups, "/Groups")


def _ids(answer: Any) -> set[str]:
    return {resource["id"] for resource in answer.json["Resources"]}


def test_bulk_and_me_are_refused(tenants: Tenants) -> None:
    headers = {**tenants.a.bearer("scim"), "Accept": SCIM_TYPE, "Content-Type": SCIM_TYPE}
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "DELETE", "path": tenants.fill("/Users/{scim_user}"), "bulkId": "x"}
        ],
    }
    unchanged = change_checker(tenants.sessions)
    unchanged()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        for path in ("/scim/v2/Bulk", "/scim/v2/Me", tenants.fill("/scim/v2/Me/{scim_user}")):
            answer = tenants.client.open(
                path, method=method, data=json.dumps(bulk), headers=headers
            )
            assert answer.status_code in (401, 403, 404, 405, 501), (path, method)
            assert answer.mimetype == SCIM_TYPE and answer.json["schemas"] == [SCIM_ERROR]
    unchanged()


# One request per protocol that a live token of that kind is let through.
PROBES = {
    "admin": ("GET", "/api/v1/me", None),
    "scim": ("GET", "/scim/v2/Users", None),
    "odock": ("POST", "/odock/v1/usage", {"records": []}),
}


def _probe(client: FlaskClient, protocol: str, secret: str) -> Any:
    method, path, body = PROBES[protocol]
    headers = {"Authorization": f"Bearer {secret}", "Accept": SCIM_TYPE}
    return client.open(path, method=method, json=body, headers=headers)


def _assert_unauthorized(answer: Any, protocol: str, label: str) -> None:
    assert answer.status_code == 401, (label, answer.status_code, answer.get_data(as_text=True))
    if protocol == "scim":
        assert answer.mimetype == SCIM_TYPE and answer.json["schemas"] == [SCIM_ERROR], label
    else:
        assert answer.mimetype == "application/problem+json", label


def test_a_token_opens_only_its_own_protocol_and_only_while_live(
    session: Session, tenants: Tenants
) -> None:
    org = session.get_one(Organisation, tenants.a.org_id)
    admin_user = session.get_one(User, uuid.UUID(tenants.a.ids["admin"]))
    dead: dict[str, dict[str, str]] = {"revoked": {}, "expired": {}}
    for kind in PROBES:
        scope = TokenScope(kind)
        for state in dead:
            issued = tokens.create_token(
                session,
                organisation=org,
                scope=scope,
                user=admin_user if scope is TokenScope.ADMIN else None,
                actor=f.SETUP,
            )
            dead[state][kind] = issued.secret
            if state == "revoked":
                tokens.revoke_token(session, token=issued.token, actor=f.SETUP)
            else:
                session.execute(
                    update(ApiToken)
                    .where(ApiToken.id == issued.token.id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
    session.commit()
    live = {"admin": tenants.a.admin_token, "scim": tenants.a.scim_token}
    live["odock"] = tenants.a.odock_token
    unchanged = change_checker(tenants.sessions)
    unchanged()
    for protocol in PROBES:
        for kind, secret in live.items():
            answer = _probe(tenants.client, protocol, secret)
            if kind == protocol:  # let in (the bridge's probe is then refused as empty)
                assert answer.status_code in (200, 400), (protocol, answer.get_data(as_text=True))
            else:
                _assert_unauthorized(answer, protocol, f"a {kind} token on {protocol}")
        for state, secrets in dead.items():
            for kind, secret in secrets.items():
                answer = _probe(tenants.client, protocol, secret)
                _assert_unauthorized(answer, protocol, f"a {state} {kind} token on {protocol}")
    # The console's cookie is not a bearer token, and a bearer token is not a console session.
    cookie = tenants.a.console.get_cookie("odock_console", path="/console")
    assert cookie is not None
    for protocol in PROBES:
        _assert_unauthorized(_probe(tenants.client, protocol, cookie.value), protocol, "cookie")
    stranger = tenants.client.get("/console", headers=tenants.a.bearer("admin"))
    assert stranger.status_code == 303 and "/console/sign-in" in stranger.headers["Location"]
    unchanged()


def test_receivers_take_only_their_secrets(tenants: Tenants) -> None:
    """A's IdP secrets and A's Odock token do not deliver into B (nor B's slug with A's)."""
    payload = {
        "id": f"evt_{uuid.uuid4().hex[:12]}",
        "type": "user.deactivated",
        "occurred_at": utcnow().isoformat(),
        "user": {"email": tenants.b.emails[1]},
    }
    body = json.dumps(payload).encode()
    signed_by_a = {
        **signed_webhooks.sign(
            tenants.a.signing_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body
        ),
        "Content-Type": "application/json",
    }
    okta = {
        "eventType": "com.okta.event_hook",
        "eventId": uuid.uuid4().hex,
        "data": {"events": []},
    }
    unchanged = change_checker(tenants.sessions)
    unchanged()
    events = tenants.client.post(f"/hooks/events/{tenants.b.slug}", data=body, headers=signed_by_a)
    okta_post = tenants.client.post(
        f"/hooks/okta/{tenants.b.slug}",
        json=okta,
        headers={"Authorization": OKTA_SECRET_A},
    )
    okta_verify = tenants.client.get(
        f"/hooks/okta/{tenants.b.slug}",
        headers={"Authorization": OKTA_SECRET_A, "X-Okta-Verification-Challenge": "c"},
    )
    signed_by_b = {
        **signed_webhooks.sign(
            tenants.b.signing_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body
        ),
        "Content-Type": "application/json",
    }
    odock_event = tenants.client.post(
        "/odock/v1/events", data=body, headers={**signed_by_b, **tenants.a.bearer("odock")}
    )
    for label, answer in {
        "events": events,
        "okta": okta_post,
        "okta verify": okta_verify,
        "odock events": odock_event,
    }.items():
        assert answer.status_code in (401, 403, 404), (label, answer.status_code, answer.json)
        assert answer.mimetype == "application/problem+json", label
    unchanged()


def _push(tenants: Tenants, who: Tenant, path: str, body: dict[str, Any]) -> Any:
    return tenants.client.put(path, json=body, headers=who.bearer("odock"))


def _spy_budget(key_id: str) -> dict[str, Any]:
    return {
        "owner_type": "APIKEY",
        "owner_id": key_id,
        "name": "acme-spy-budget",
        "amount": "7.00",
        "version": 1,
    }


def test_a_budget_naming_another_organisations_key_is_refused(tenants: Tenants) -> None:
    """A budget or quota of A owned by B's key: B's key would carry A's object into B's
    revocation findings. Refused as an unknown reference, as a person or team of B is."""
    unchanged = change_checker(tenants.sessions)
    unchanged()
    budget = _push(
        tenants, tenants.a, f"/odock/v1/budgets/{uuid.uuid4()}", _spy_budget(tenants.b.ids["key"])
    )
    quota = _push(
        tenants,
        tenants.a,
        f"/odock/v1/quotas/{uuid.uuid4()}",
        {
            "owner_type": "APIKEY",
            "owner_id": tenants.b.ids["key"],
            "name": "spy",
            "limit": 1,
            "version": 1,
        },
    )
    for answer in (budget, quota):
        assert answer.status_code == 422, answer.get_data(as_text=True)
        assert answer.mimetype == "application/problem+json"
        assert answer.json["field"] == "owner_id", answer.json
    unchanged()


def _owned_lines(owner_id: str, budget_id: uuid.UUID, quota_id: uuid.UUID) -> list[bytes]:
    budget = {"kind": "budget", "id": str(budget_id), **_spy_budget(owner_id)}
    quota = {**budget, "kind": "quota", "id": str(quota_id), "limit": 1}
    del quota["amount"]
    return [json.dumps(budget).encode(), json.dumps(quota).encode()]


def test_an_import_naming_another_organisations_key_is_refused_row_by_row(
    tenants: Tenants, engine: Engine
) -> None:
    """The bulk path (the import, and the reconcile through the same loader) asks the push's
    rule: a budget or quota of A owned by B's key is rejected in the run's summary, as a person
    of B would be, and nothing of it is stored."""
    b_key = tenants.b.ids["key"]
    budget_id, quota_id = uuid.uuid4(), uuid.uuid4()
    before = database_state(tenants.sessions)
    run = odock_reconcile.import_lines(
        engine, organisation_id=tenants.a.org_id, lines=_owned_lines(b_key, budget_id, quota_id)
    )
    for kind, object_id in (("budget", budget_id), ("quota", quota_id)):
        counts = run.summary[kind]
        assert (counts["created"], counts["rejected"]) == (0, 1), run.summary
        assert counts["ids"]["rejected"] == [f"{object_id}: no key {b_key} in this organisation"]
    only_the_run_was_recorded(before, database_state(tenants.sessions), "odock.import.finished")
    # The controls: a key id nobody holds yet is A's to name, and B's key is B's.
    for org_id, owner in ((tenants.a.org_id, str(uuid.uuid4())), (tenants.b.org_id, b_key)):
        lines = _owned_lines(owner, uuid.uuid4(), uuid.uuid4())
        loaded = odock_reconcile.import_lines(engine, organisation_id=org_id, lines=lines)
        assert loaded.summary["budget"]["created"] == loaded.summary["quota"]["created"] == 1


def test_a_key_arriving_after_a_budget_of_another_organisation_does_not_bring_it_along(
    tenants: Tenants, session: Session
) -> None:
    """The other order: A's budget names a key id nobody holds yet (accepted: Odock may push
    a key after its budget), then that id arrives as B's key. B's revocation preview and
    review of the key's owner list B's own objects only, and A's budget stays as it was."""
    key_id = str(uuid.uuid4())
    budget_id = str(uuid.uuid4())
    early = _push(tenants, tenants.a, f"/odock/v1/budgets/{budget_id}", _spy_budget(key_id))
    assert early.status_code == 200, early.get_data(as_text=True)
    arrived = _push(
        tenants,
        tenants.b,
        f"/odock/v1/keys/{key_id}",
        {
            "type": "USER",
            "name": "globex key",
            "owner_user_id": tenants.b.ids["owner"],
            "version": 1,
        },
    )
    assert arrived.status_code == 200, arrived.get_data(as_text=True)
    owner = tenants.b.ids["owner"]
    preview = tenants.client.get(
        f"/api/v1/users/{owner}/revocation-preview", headers=tenants.b.bearer("admin")
    )
    assert preview.status_code == 200, preview.get_data(as_text=True)
    assert key_id in preview.get_data(as_text=True)
    assert budget_id not in preview.get_data(as_text=True)
    assert "acme-spy-budget" not in preview.get_data(as_text=True)
    before = _row_of(tenants, budget_id)
    revoked = tenants.client.post(
        f"/api/v1/users/{owner}/revoke", json={"reason": "left"}, headers=tenants.b.bearer("admin")
    )
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    revocation_id = session.scalars(
        select(Revocation.id).where(Revocation.user_id == uuid.UUID(owner))
    ).one()
    review = reviews.open_revocation_review(session, revocation_id=revocation_id, actor=f.SETUP)
    session.commit()
    assert review is not None
    subjects = {str(finding.subject_id) for finding in review.findings}
    assert key_id in subjects and budget_id not in subjects, subjects
    assert _row_of(tenants, budget_id) == before


def _row_of(tenants: Tenants, budget_id: str) -> dict[str, Any]:
    with tenants.sessions() as fresh:
        budget = fresh.get_one(Budget, uuid.UUID(budget_id))
        row = {c.key: getattr(budget, c.key) for c in Budget.__mapper__.column_attrs}
        fresh.rollback()
    return row


def rows_of(sessions: SessionFactory, organisation_id: uuid.UUID) -> dict[str, list[str]]:
    """Every row of every table that has an organisation, of this organisation only (audit
    events included), but a token's last use."""
    from models.base import Base

    state: dict[str, list[str]] = {}
    with sessions() as fresh:
        for table in Base.metadata.sorted_tables:
            if "organisation_id" not in table.c:
                continue
            columns = [
                c for c in table.columns if (table.name, c.name) != ("api_tokens", "last_used_at")
            ]
            rows = fresh.execute(select(*columns).where(table.c.organisation_id == organisation_id))
            state[table.name] = sorted(str(tuple(row)) for row in rows)
        fresh.rollback()
    return state


def test_idp_events_to_one_organisation_never_reach_another(
    tenants: Tenants, session: Session
) -> None:
    """A's own receiver, A's secret, events naming B's person (email, external id) and B's
    team: stored and processed in A, where nobody matches; nothing of B changes."""
    from models.actions import idp_events
    from models.entities import ReceivedDelivery

    person = {"email": tenants.b.emails[1], "external_id": "00uB0"}
    events = [
        {"type": "user.deactivated"},
        {"type": "user.updated", "changes": {"name": "Taken Over"}},
        {"type": "membership.added", "team": {"name": "Globex Research"}},
        {"type": "membership.removed", "team": {"name": "Globex Research"}},
        {"type": "user.access_end", "access_ends_at": FUTURE},
    ]
    payload = {
        "events": [
            {
                "id": f"evt_{n}",
                "occurred_at": utcnow().isoformat(),
                "user": person,
                **event,
            }
            for n, event in enumerate(events)
        ]
    }
    body = json.dumps(payload).encode()
    headers = signed_webhooks.sign(
        tenants.a.signing_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body
    )
    before = rows_of(tenants.sessions, tenants.b.org_id)
    answer = tenants.client.post(
        f"/hooks/events/{tenants.a.slug}",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    delivery = session.scalars(
        select(ReceivedDelivery).where(ReceivedDelivery.organisation_id == tenants.a.org_id)
    ).one()
    idp_events.process_delivery(session, delivery=delivery)
    session.commit()
    assert all(result.get("user_id") is None for result in delivery.results), delivery.results
    assert rows_of(tenants.sessions, tenants.b.org_id) == before
    # The control: the same events to B's own receiver find B's person and change B.
    headers = signed_webhooks.sign(
        tenants.b.signing_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body
    )
    answer = tenants.client.post(
        f"/hooks/events/{tenants.b.slug}",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    mine = session.scalars(
        select(ReceivedDelivery).where(
            ReceivedDelivery.organisation_id == tenants.b.org_id,
            ReceivedDelivery.channel == idp_events.CHANNEL_EVENTS,
            ReceivedDelivery.status == "received",
        )
    ).all()
    for received in mine:
        idp_events.process_delivery(session, delivery=received)
    session.commit()
    applied = [r for received in mine for r in received.results if r.get("user_id")]
    assert applied and rows_of(tenants.sessions, tenants.b.org_id) != before
