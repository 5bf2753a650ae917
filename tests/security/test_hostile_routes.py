"""Hostile input on every route: no input, however odd, gets a 5xx or a traceback.

Every route of the app's URL map is in ROUTES (how to reach its handler: the credentials of
the right kind, a path naming a real object of the organisation, a body or form it takes) or
in EXEMPT with a reason; a route added later fails test_every_route_is_covered_or_exempt
until it is covered. For each route and method the test sends a catalogue of odd input
(tests/security/hostile_requests.py): malformed, deep and huge JSON, wrong content types,
bytes that are not UTF-8, NUL and lone surrogates in the query, path ids that are not ids,
absurd and duplicate query parameters, garbage and tampered cursors, oversized and garbage
headers, console forms with and without the CSRF token, garbage OIDC callback answers, the
request sent as OPTIONS (and HEAD for a GET); and a hypothesis test draws more combinations
(bounded, derandomized).

Every answer: status below 500 (SCIM's 501 for bulk and /Me is the one exception, by RFC
7644), in the protocol's format (SCIM error JSON under /scim/v2, an HTML page under /console,
/enroll and /reviews, problem JSON elsewhere), no traceback; and a refusal commits no write
(watched on the app's engine: CommittedWrites), and leaves every row as it was, audit events
included (a snapshot of every table around a write route's refusals), but where AUDITED_REFUSALS
says why a refusal is recorded. After each route's catalogue the well-formed request (the
control) must get through, so that the probes had what it takes to reach the handler.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.actions import invitations as inv
from models.actions import odock_bridge, oidc_providers, tokens
from models.actor import Actor
from models.db import SessionFactory
from models.entities import OidcProvider, Organisation, User
from models.enums import Role, Source, TokenScope
from models.settings import Settings
from models.signed_links import REVIEW_ACK_PURPOSE, make_token
from tests.scim.payloads import okta_create_group, okta_create_user, okta_deactivate
from tests.security.hostile_requests import (
    HOOK_SECRET,
    CommittedWrites,
    Probe,
    Sent,
    base_request,
    catalogue,
    probe_strategy,
    send,
)
from tests.security.tenants import OKTA_SECRET_B, Tenant, build_target
from tests.support import factories as f
from tests.support.apps import Apps
from tests.support.fuzz import FUZZ, hold_tasks
from tests.support.oidc import serve_discovery
from tests.support.state import database_state
from webhooks.context import EXTENSION

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_TYPE = "application/scim+json"
IDENTITY_HEADER = "X-Odock-Verified-Email"


@dataclass(frozen=True)
class Target:
    """How to reach one route's handler: the protocol (which credentials, how a body is
    sent), the path with {names} of the organisation's ids, and a body the handler takes."""

    protocol: str
    path: str
    body: Any = None


def t(protocol: str, path: str, body: Any = None) -> Target:
    return Target(protocol, path, body)


PATCH_NAME = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}],
}
SEARCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 2}
LDAP_CONNECTOR = {
    "name": "hostile-ldap",
    "server_urls": ["ldap://127.0.0.1:1"],
    "bind_dn": "cn=admin,dc=globex,dc=test",
    "bind_password": "hostile-bind-password",
    "base_dn": "ou=people,dc=globex,dc=test",
}
KEY_BODY = {"type": "ORGANISATION", "name": "pushed", "masked_value": "sk-...0001", "version": 7}
EVENT = {"id": "evt_hostile", "type": "user.deactivated", "user": {"email": "nobody@x.test"}}
ODOCK_EVENT = {"type": "key.deleted", "id": "{key}", "version": 99}
USAGE = {"records": [{"id": "u1", "occurred_at": "2026-01-01T00:00:00Z", "api_key_id": "{key}"}]}

# (rule, method) -> how to reach the handler. Receivers, links and callbacks take their own
# credential (a signature, a secret, the link's token, the sign-in state).
ROUTES: dict[tuple[str, str], Target] = {
    # public
    ("/healthz", "GET"): t("public", "/healthz"),
    ("/readyz", "GET"): t("public", "/readyz"),
    ("/metrics", "GET"): t("public", "/metrics"),
    ("/static/<path:filename>", "GET"): t("public", "/static/console.css"),
    ("/console/static/<path:filename>", "GET"): t("public", "/console/static/console.css"),
    ("/api/v1/openapi.json", "GET"): t("public", "/api/v1/openapi.json"),
    ("/odock/v1/openapi.json", "GET"): t("public", "/odock/v1/openapi.json"),
    # admin API
    ("/api/v1/audit-events", "GET"): t("admin", "/api/v1/audit-events"),
    ("/api/v1/audit-streams", "GET"): t("admin", "/api/v1/audit-streams"),
    ("/api/v1/audit-streams", "POST"): t(
        "admin",
        "/api/v1/audit-streams",
        {"name": "s2", "preset": "generic", "target": "http://127.0.0.1:1/siem"},
    ),
    ("/api/v1/audit-streams/<uuid:stream_id>", "GET"): t(
        "admin", "/api/v1/audit-streams/{audit_stream}"
    ),
    ("/api/v1/audit-streams/<uuid:stream_id>", "PATCH"): t(
        "admin", "/api/v1/audit-streams/{audit_stream}", {"enabled": False}
    ),
    ("/api/v1/audit-streams/<uuid:stream_id>", "DELETE"): t(
        "admin", "/api/v1/audit-streams/{audit_stream}"
    ),
    ("/api/v1/directory/connectors", "GET"): t("admin", "/api/v1/directory/connectors"),
    ("/api/v1/directory/connectors", "POST"): t(
        "admin", "/api/v1/directory/connectors", LDAP_CONNECTOR
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>", "GET"): t(
        "admin", "/api/v1/directory/connectors/{connector}"
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>", "PATCH"): t(
        "admin", "/api/v1/directory/connectors/{connector}", {"name": "renamed"}
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>", "DELETE"): t(
        "admin", "/api/v1/directory/connectors/{connector}"
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>/runs", "GET"): t(
        "admin", "/api/v1/directory/connectors/{connector}/runs"
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>/sync", "POST"): t(
        "admin", "/api/v1/directory/connectors/{connector}/sync", {"dry_run": True}
    ),
    ("/api/v1/directory/connectors/<uuid:connector_id>/test", "POST"): t(
        "admin", "/api/v1/directory/connectors/{connector}/test", {}
    ),
    ("/api/v1/directory/runs/<uuid:run_id>", "GET"): t("admin", "/api/v1/directory/runs/{run}"),
    ("/api/v1/directory/runs/<uuid:run_id>/approve", "POST"): t(
        "admin", "/api/v1/directory/runs/{run}/approve", {}
    ),
    ("/api/v1/directory/runs/<uuid:run_id>/discard", "POST"): t(
        "admin", "/api/v1/directory/runs/{run}/discard", {}
    ),
    ("/api/v1/event-deliveries", "GET"): t("admin", "/api/v1/event-deliveries"),
    ("/api/v1/event-deliveries/<uuid:delivery_id>", "GET"): t(
        "admin", "/api/v1/event-deliveries/{event_delivery}"
    ),
    ("/api/v1/event-deliveries/<uuid:delivery_id>/reprocess", "POST"): t(
        "admin", "/api/v1/event-deliveries/{event_delivery}/reprocess", {}
    ),
    ("/api/v1/event-hooks", "GET"): t("admin", "/api/v1/event-hooks"),
    ("/api/v1/event-hooks/okta", "PUT"): t(
        "admin", "/api/v1/event-hooks/okta", {"secret": OKTA_SECRET_B}
    ),
    ("/api/v1/event-hooks/okta", "DELETE"): t("admin", "/api/v1/event-hooks/okta"),
    ("/api/v1/event-hooks/signing-secrets", "POST"): t(
        "admin", "/api/v1/event-hooks/signing-secrets", {}
    ),
    ("/api/v1/event-hooks/signing-secrets/<secret_id>", "DELETE"): t(
        "admin", "/api/v1/event-hooks/signing-secrets/{signing_secret}"
    ),
    ("/api/v1/findings/<uuid:finding_id>", "GET"): t("admin", "/api/v1/findings/{finding}"),
    ("/api/v1/findings/<uuid:finding_id>/acknowledge", "POST"): t(
        "admin", "/api/v1/findings/{finding}/acknowledge", {}
    ),
    ("/api/v1/findings/<uuid:finding_id>/dismiss", "POST"): t(
        "admin", "/api/v1/findings/{finding}/dismiss", {"note": "seen"}
    ),
    ("/api/v1/findings/<uuid:finding_id>/reassign", "POST"): t(
        "admin", "/api/v1/findings/{finding}/reassign", {"user_id": "{admin}", "note": "x"}
    ),
    ("/api/v1/findings/<uuid:finding_id>/resolve", "POST"): t(
        "admin", "/api/v1/findings/{finding}/resolve", {"note": "done"}
    ),
    ("/api/v1/invitations", "GET"): t("admin", "/api/v1/invitations"),
    ("/api/v1/invitations", "POST"): t(
        "admin", "/api/v1/invitations", {"email": "new@globex.test", "teams": []}
    ),
    ("/api/v1/invitations/<uuid:invitation_id>", "GET"): t(
        "admin", "/api/v1/invitations/{invitation}"
    ),
    ("/api/v1/invitations/<uuid:invitation_id>/resend", "POST"): t(
        "admin", "/api/v1/invitations/{invitation}/resend", {}
    ),
    ("/api/v1/invitations/<uuid:invitation_id>/revoke", "POST"): t(
        "admin", "/api/v1/invitations/{invitation}/revoke", {}
    ),
    ("/api/v1/invitations/leaver-policy", "GET"): t("admin", "/api/v1/invitations/leaver-policy"),
    ("/api/v1/invitations/leaver-policy", "PUT"): t(
        "admin", "/api/v1/invitations/leaver-policy", {"policy": "revoke"}
    ),
    ("/api/v1/invitations/refresh", "POST"): t(
        "admin", "/api/v1/invitations/refresh", {"ids": ["{invitation}"]}
    ),
    ("/api/v1/key-policy", "GET"): t("admin", "/api/v1/key-policy"),
    ("/api/v1/key-policy", "PUT"): t("admin", "/api/v1/key-policy", {"org_key_policy": "hold"}),
    ("/api/v1/mass-change/batches/<uuid:batch_id>/approve", "POST"): t(
        "admin", "/api/v1/mass-change/batches/{batch}/approve", {}
    ),
    ("/api/v1/mass-change/batches/<uuid:batch_id>/discard", "POST"): t(
        "admin", "/api/v1/mass-change/batches/{batch}/discard", {}
    ),
    ("/api/v1/mass-change/holds", "GET"): t("admin", "/api/v1/mass-change/holds"),
    ("/api/v1/mass-change/holds/<uuid:hold_id>/approve", "POST"): t(
        "admin", "/api/v1/mass-change/holds/{hold}/approve", {}
    ),
    ("/api/v1/mass-change/holds/<uuid:hold_id>/discard", "POST"): t(
        "admin", "/api/v1/mass-change/holds/{hold}/discard", {}
    ),
    ("/api/v1/mass-change/settings", "GET"): t("admin", "/api/v1/mass-change/settings"),
    ("/api/v1/mass-change/settings", "PUT"): t(
        "admin", "/api/v1/mass-change/settings", {"threshold_count": 5, "window_minutes": 10}
    ),
    ("/api/v1/me", "GET"): t("admin", "/api/v1/me"),
    ("/api/v1/notification-deliveries/<uuid:delivery_id>", "GET"): t(
        "admin", "/api/v1/notification-deliveries/{notification_delivery}"
    ),
    ("/api/v1/notification-deliveries/<uuid:delivery_id>/resend", "POST"): t(
        "admin", "/api/v1/notification-deliveries/{notification_delivery}/resend", {}
    ),
    ("/api/v1/notification-hooks", "GET"): t("admin", "/api/v1/notification-hooks"),
    ("/api/v1/notification-hooks", "POST"): t(
        "admin",
        "/api/v1/notification-hooks",
        {"name": "h2", "kind": "webhook", "target": "http://127.0.0.1:1/hook"},
    ),
    ("/api/v1/notification-hooks/<uuid:hook_id>", "GET"): t(
        "admin", "/api/v1/notification-hooks/{hook}"
    ),
    ("/api/v1/notification-hooks/<uuid:hook_id>", "PATCH"): t(
        "admin", "/api/v1/notification-hooks/{hook}", {"target": "http://127.0.0.1:2/h"}
    ),
    ("/api/v1/notification-hooks/<uuid:hook_id>", "DELETE"): t(
        "admin", "/api/v1/notification-hooks/{hook}"
    ),
    ("/api/v1/notification-hooks/<uuid:hook_id>/deliveries", "GET"): t(
        "admin", "/api/v1/notification-hooks/{hook}/deliveries"
    ),
    ("/api/v1/notification-hooks/<uuid:hook_id>/rotate-secret", "POST"): t(
        "admin", "/api/v1/notification-hooks/{hook}/rotate-secret", {"keep_previous_hours": 0}
    ),
    ("/api/v1/recertification/campaigns", "GET"): t("admin", "/api/v1/recertification/campaigns"),
    ("/api/v1/recertification/campaigns", "POST"): t(
        "admin", "/api/v1/recertification/campaigns", {}
    ),
    ("/api/v1/recertification/campaigns/<uuid:campaign_id>", "GET"): t(
        "admin", "/api/v1/recertification/campaigns/{campaign}"
    ),
    ("/api/v1/recertification/findings/<uuid:finding_id>/decide", "POST"): t(
        "admin",
        "/api/v1/recertification/findings/{recert_finding}/decide",
        {"decision": "keep", "reason": "still needed"},
    ),
    ("/api/v1/recertification/findings/<uuid:finding_id>/restore", "POST"): t(
        "admin", "/api/v1/recertification/findings/{recert_finding}/restore", {"reason": "x"}
    ),
    ("/api/v1/recertification/policy", "GET"): t("admin", "/api/v1/recertification/policy"),
    ("/api/v1/recertification/policy", "PUT"): t(
        "admin", "/api/v1/recertification/policy", {"spend_days": 30}
    ),
    ("/api/v1/reviews", "GET"): t("admin", "/api/v1/reviews"),
    ("/api/v1/reviews/<uuid:review_id>", "GET"): t("admin", "/api/v1/reviews/{review}"),
    ("/api/v1/reviews/<uuid:review_id>/acknowledge", "POST"): t(
        "admin", "/api/v1/reviews/{review}/acknowledge", {}
    ),
    ("/api/v1/sign-in/oidc", "GET"): t("admin", "/api/v1/sign-in/oidc"),
    ("/api/v1/sign-in/oidc", "PUT"): t(
        "admin",
        "/api/v1/sign-in/oidc",
        {"issuer": "{issuer}", "client_id": "odock-sync", "client_secret": "s" * 24},
    ),
    ("/api/v1/sign-in/oidc", "DELETE"): t("admin", "/api/v1/sign-in/oidc"),
    ("/api/v1/source-health", "GET"): t("admin", "/api/v1/source-health"),
    ("/api/v1/source-health/settings", "PATCH"): t(
        "admin", "/api/v1/source-health/settings", {"scim_silence_seconds": 3600}
    ),
    ("/api/v1/teams", "GET"): t("admin", "/api/v1/teams"),
    ("/api/v1/teams", "POST"): t("admin", "/api/v1/teams", {"name": "Hostile Team"}),
    ("/api/v1/teams/<uuid:team_id>", "DELETE"): t("admin", "/api/v1/teams/{spare_team}"),
    ("/api/v1/teams/<uuid:team_id>", "PATCH"): t(
        "admin", "/api/v1/teams/{team}", {"name": "Hostile Rename"}
    ),
    ("/api/v1/teams/<uuid:team_id>/members", "GET"): t("admin", "/api/v1/teams/{team}/members"),
    ("/api/v1/teams/<uuid:team_id>/members/<uuid:user_id>", "PUT"): t(
        "admin", "/api/v1/teams/{team}/members/{person}", {"role": "MEMBER"}
    ),
    ("/api/v1/teams/<uuid:team_id>/members/<uuid:user_id>", "DELETE"): t(
        "admin", "/api/v1/teams/{team}/members/{owner}"
    ),
    ("/api/v1/tokens", "GET"): t("admin", "/api/v1/tokens"),
    ("/api/v1/tokens", "POST"): t("admin", "/api/v1/tokens", {"scope": "scim"}),
    ("/api/v1/tokens/<uuid:token_id>", "DELETE"): t("admin", "/api/v1/tokens/{spare_token}"),
    ("/api/v1/users", "GET"): t("admin", "/api/v1/users"),
    ("/api/v1/users", "POST"): t(
        "admin", "/api/v1/users", {"email": "made@globex.test", "name": "Made"}
    ),
    ("/api/v1/users/<uuid:user_id>", "GET"): t("admin", "/api/v1/users/{owner}"),
    ("/api/v1/users/<uuid:user_id>", "PATCH"): t(
        "admin", "/api/v1/users/{owner}", {"name": "Renamed"}
    ),
    ("/api/v1/users/<uuid:user_id>/access-end", "PUT"): t(
        "admin", "/api/v1/users/{owner}/access-end", {"access_ends_at": None}
    ),
    ("/api/v1/users/<uuid:user_id>/approve", "POST"): t("admin", "/api/v1/users/{leaver}/approve"),
    ("/api/v1/users/<uuid:user_id>/decline", "POST"): t("admin", "/api/v1/users/{leaver}/decline"),
    ("/api/v1/users/<uuid:user_id>/reactivate", "POST"): t(
        "admin", "/api/v1/users/{leaver}/reactivate", {}
    ),
    ("/api/v1/users/<uuid:user_id>/revocation-preview", "GET"): t(
        "admin", "/api/v1/users/{owner}/revocation-preview"
    ),
    ("/api/v1/users/<uuid:user_id>/revoke", "POST"): t(
        "admin", "/api/v1/users/{person}/revoke", {"reason": "left"}
    ),
    # console (the organisation's signed-in admin; POSTs carry its session's CSRF token)
    ("/console", "GET"): t("console", "/console"),
    ("/console/audit", "GET"): t("console", "/console/audit"),
    ("/console/deliveries", "GET"): t("console", "/console/deliveries"),
    ("/console/departures", "GET"): t("console", "/console/departures"),
    ("/console/holds", "GET"): t("console", "/console/holds"),
    ("/console/recertification", "GET"): t("console", "/console/recertification"),
    ("/console/reviews", "GET"): t("console", "/console/reviews"),
    ("/console/runs", "GET"): t("console", "/console/runs"),
    ("/console/event-deliveries/<uuid:delivery_id>/reprocess", "POST"): t(
        "console", "/console/event-deliveries/{event_delivery}/reprocess", {}
    ),
    ("/console/findings/<uuid:finding_id>", "GET"): t("console", "/console/findings/{finding}"),
    ("/console/findings/<uuid:finding_id>/acknowledge", "POST"): t(
        "console", "/console/findings/{finding}/acknowledge", {"note": "seen"}
    ),
    ("/console/findings/<uuid:finding_id>/reassign", "POST"): t(
        "console", "/console/findings/{finding}/reassign", {"user_id": "{admin}"}
    ),
    ("/console/findings/<uuid:finding_id>/resolve", "POST"): t(
        "console", "/console/findings/{finding}/resolve", {"note": "done"}
    ),
    ("/console/holds/batches/<uuid:batch_id>/approve", "POST"): t(
        "console", "/console/holds/batches/{batch}/approve", {}
    ),
    ("/console/holds/batches/<uuid:batch_id>/discard", "POST"): t(
        "console", "/console/holds/batches/{batch}/discard", {}
    ),
    ("/console/notification-deliveries/<uuid:delivery_id>/resend", "POST"): t(
        "console", "/console/notification-deliveries/{notification_delivery}/resend", {}
    ),
    ("/console/people/<uuid:user_id>", "GET"): t("console", "/console/people/{owner}"),
    ("/console/people/<uuid:user_id>/revoke", "POST"): t(
        "console", "/console/people/{person}/revoke", {"reason": "left"}
    ),
    ("/console/recertification/<uuid:campaign_id>", "GET"): t(
        "console", "/console/recertification/{campaign}"
    ),
    ("/console/recertification/findings/<uuid:finding_id>/decide", "POST"): t(
        "console",
        "/console/recertification/findings/{recert_finding}/decide",
        {"decision": "keep", "reason": "still needed"},
    ),
    ("/console/reviews/<uuid:review_id>", "GET"): t("console", "/console/reviews/{review}"),
    ("/console/reviews/<uuid:review_id>/acknowledge", "POST"): t(
        "console", "/console/reviews/{review}/acknowledge", {}
    ),
    ("/console/runs/<uuid:run_id>", "GET"): t("console", "/console/runs/{run}"),
    ("/console/runs/<uuid:run_id>/approve", "POST"): t(
        "console", "/console/runs/{run}/approve", {}
    ),
    ("/console/runs/<uuid:run_id>/discard", "POST"): t(
        "console", "/console/runs/{run}/discard", {}
    ),
    ("/console/sign-in", "GET"): t("console_public", "/console/sign-in"),
    ("/console/sign-in", "POST"): t(
        "console_sign_in", "/console/sign-in", {"token": "{fresh_admin_token}"}
    ),
    ("/console/sign-out", "POST"): t("console", "/console/sign-out", {}),
    ("/console/oidc/sign-in", "GET"): t(
        "console_public", "/console/oidc/sign-in?organisation={slug}"
    ),
    ("/console/oidc/callback", "GET"): t("oidc_console", "/console/oidc/callback"),
    ("/console/oidc/callback/<callback_id>", "GET"): t(
        "oidc_console", "/console/oidc/callback/{callback_id}"
    ),
    # enrollment: the link's token, the sign-in proxy's identity header
    ("/enroll/<token>", "GET"): t("enroll", "/enroll/{enroll_token}"),
    ("/enroll/<token>", "POST"): t("enroll", "/enroll/{enroll_token}", {"name": "Invitee"}),
    ("/enroll/<token>/sign-in", "GET"): t("enroll", "/enroll/{enroll_token}/sign-in"),
    ("/enroll/oidc/callback", "GET"): t("oidc_enroll", "/enroll/oidc/callback"),
    ("/enroll/oidc/callback/<callback_id>", "GET"): t(
        "oidc_enroll", "/enroll/oidc/callback/{callback_id}"
    ),
    ("/reviews/acknowledge/<token>", "GET"): t("review_link", "/reviews/acknowledge/{ack_token}"),
    ("/reviews/acknowledge/<token>", "POST"): t(
        "review_link", "/reviews/acknowledge/{ack_token}", {}
    ),
    # receivers
    ("/hooks/enrollment/<org_slug>", "POST"): t(
        "enrollment_hook",
        "/hooks/enrollment/{slug}",
        {"token": "{enroll_token}", "email": "invitee@globex.test", "name": "Invitee"},
    ),
    ("/hooks/events/<slug>", "POST"): t("events", "/hooks/events/{slug}", EVENT),
    ("/hooks/okta/<slug>", "GET"): t("okta_verify", "/hooks/okta/{slug}"),
    ("/hooks/okta/<slug>", "POST"): t(
        "okta",
        "/hooks/okta/{slug}",
        {"eventType": "com.okta.event_hook", "eventId": "e1", "data": {"events": []}},
    ),
    # the Odock bridge
    ("/odock/v1/<any(keys, budgets, quotas):collection>/<uuid:object_id>", "PUT"): t(
        "odock", "/odock/v1/keys/{key}", KEY_BODY
    ),
    ("/odock/v1/<any(keys, budgets, quotas):collection>/<uuid:object_id>", "DELETE"): t(
        "odock", "/odock/v1/budgets/{budget}?version=99"
    ),
    ("/odock/v1/events", "POST"): t("odock_events", "/odock/v1/events", ODOCK_EVENT),
    ("/odock/v1/usage", "POST"): t("odock", "/odock/v1/usage", USAGE),
    # SCIM
    ("/scim/v2/ServiceProviderConfig", "GET"): t("scim", "/scim/v2/ServiceProviderConfig"),
    ("/scim/v2/Schemas", "GET"): t("scim", "/scim/v2/Schemas"),
    ("/scim/v2/Schemas/<schema_id>", "GET"): t(
        "scim", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
    ),
    ("/scim/v2/ResourceTypes", "GET"): t("scim", "/scim/v2/ResourceTypes"),
    ("/scim/v2/ResourceTypes/<name>", "GET"): t("scim", "/scim/v2/ResourceTypes/User"),
    ("/scim/v2/Bulk", "GET"): t("scim", "/scim/v2/Bulk"),
    ("/scim/v2/Bulk", "POST"): t("scim", "/scim/v2/Bulk", {"Operations": []}),
    ("/scim/v2/Bulk", "PUT"): t("scim", "/scim/v2/Bulk", {}),
    ("/scim/v2/Bulk", "PATCH"): t("scim", "/scim/v2/Bulk", {}),
    ("/scim/v2/Bulk", "DELETE"): t("scim", "/scim/v2/Bulk"),
    ("/scim/v2/Me", "GET"): t("scim", "/scim/v2/Me"),
    ("/scim/v2/Me", "POST"): t("scim", "/scim/v2/Me", {}),
    ("/scim/v2/Me", "PUT"): t("scim", "/scim/v2/Me", {}),
    ("/scim/v2/Me", "PATCH"): t("scim", "/scim/v2/Me", {}),
    ("/scim/v2/Me", "DELETE"): t("scim", "/scim/v2/Me"),
    ("/scim/v2/Me/<path:_rest>", "GET"): t("scim", "/scim/v2/Me/x"),
    ("/scim/v2/Me/<path:_rest>", "POST"): t("scim", "/scim/v2/Me/x", {}),
    ("/scim/v2/Me/<path:_rest>", "PUT"): t("scim", "/scim/v2/Me/x", {}),
    ("/scim/v2/Me/<path:_rest>", "PATCH"): t("scim", "/scim/v2/Me/x", {}),
    ("/scim/v2/Me/<path:_rest>", "DELETE"): t("scim", "/scim/v2/Me/x"),
    ("/scim/v2/.search", "POST"): t("scim", "/scim/v2/.search", SEARCH),
    ("/scim/v2/Users", "GET"): t("scim", "/scim/v2/Users"),
    ("/scim/v2/Users", "POST"): t(
        "scim", "/scim/v2/Users", okta_create_user("hostile@globex.test", "00uH")
    ),
    ("/scim/v2/Users/.search", "POST"): t("scim", "/scim/v2/Users/.search", SEARCH),
    ("/scim/v2/Users/<id:scim_id>", "GET"): t("scim", "/scim/v2/Users/{scim_user}"),
    ("/scim/v2/Users/<id:scim_id>", "PUT"): t(
        "scim", "/scim/v2/Users/{scim_user}", okta_create_user("scim0@{domain}", "00uB0")
    ),
    ("/scim/v2/Users/<id:scim_id>", "PATCH"): t(
        "scim", "/scim/v2/Users/{scim_user}", okta_deactivate()
    ),
    ("/scim/v2/Users/<id:scim_id>", "DELETE"): t("scim", "/scim/v2/Users/{scim_user}"),
    ("/scim/v2/Groups", "GET"): t("scim", "/scim/v2/Groups"),
    ("/scim/v2/Groups", "POST"): t("scim", "/scim/v2/Groups", okta_create_group("Hostile")),
    ("/scim/v2/Groups/.search", "POST"): t("scim", "/scim/v2/Groups/.search", SEARCH),
    ("/scim/v2/Groups/<id:group_id>", "GET"): t("scim", "/scim/v2/Groups/{scim_group}"),
    ("/scim/v2/Groups/<id:group_id>", "PUT"): t(
        "scim", "/scim/v2/Groups/{scim_group}", okta_create_group("Globex Engineers")
    ),
    ("/scim/v2/Groups/<id:group_id>", "PATCH"): t(
        "scim", "/scim/v2/Groups/{scim_group}", PATCH_NAME
    ),
    ("/scim/v2/Groups/<id:group_id>", "DELETE"): t("scim", "/scim/v2/Groups/{scim_group}"),
}

EXEMPT: dict[tuple[str, str] | str, str] = {}

# Routes whose refusals write on purpose, the tables they may write and why; every other
# table must stay as it was.
SIGN_IN_TRAIL = (
    frozenset({"audit_events", "oidc_sign_ins"}),
    "the probe starts a sign-in (a row of oidc_sign_ins, ended by the callback), and a "
    "refused provider answer is audited (docs/console.md, docs/invitations.md)",
)
AUDITED_REFUSALS: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("/console/sign-in", "POST"): (
        frozenset({"audit_events", "api_tokens"}),
        "a refused token sign-in is audited (docs/console.md); each probe signs in with a "
        "fresh admin token (a token is exchanged once), made before the request",
    ),
    ("/console/oidc/callback", "GET"): SIGN_IN_TRAIL,
    ("/console/oidc/callback/<callback_id>", "GET"): SIGN_IN_TRAIL,
    ("/enroll/oidc/callback", "GET"): SIGN_IN_TRAIL,
    ("/enroll/oidc/callback/<callback_id>", "GET"): SIGN_IN_TRAIL,
    ("/api/v1/teams/<uuid:team_id>/members/<uuid:user_id>", "PUT"): (
        frozenset({"audit_events"}),
        "adding a REVOKED person is refused and audited (models.actions.teams.MemberRevoked): "
        "a drawn revocation of the person before it (found with FUZZ_RANDOM=1 on PostgreSQL)",
    ),
}
WRITTEN_TABLE = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM|REPLACE INTO)\s+\"?(\w+)", re.I)


def test_every_route_is_covered_or_exempt(app: Flask) -> None:
    """A new route fails here until it gets a target in ROUTES or a reason in EXEMPT."""
    missing = [
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        if (rule.rule, method) not in ROUTES
        and (rule.rule, method) not in EXEMPT
        and rule.rule not in EXEMPT
    ]
    assert not missing, f"routes without hostile input: {missing}"
    routes = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods or ()}
    stale = [key for key in ROUTES if key not in routes]
    assert not stale, f"targets for routes the app no longer has: {stale}"


# ---------------------------------------------------------------------------------------------


@dataclass
class World:
    """Organisation B (tests/security/tenants.py) and every credential its routes take."""

    tenant: Tenant
    app: Flask
    sessions: SessionFactory
    values: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    console_cookie: str = ""
    writes: Any = None
    plain_org: tuple[uuid.UUID, uuid.UUID] | None = None
    state: dict[str, Any] | None = None  # every row, while nothing has been committed since
    controls: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = self.app.test_client()
        self.raw_client = self.app.test_client(use_cookies=False)
        self.csrf = self.tenant.csrf()
        cookie = self.tenant.console.get_cookie("odock_console", path="/console")
        assert cookie is not None
        self.console_cookie = f"odock_console={cookie.value}"

    def fresh_client(self) -> FlaskClient:
        return self.app.test_client()

    def fresh_admin_token(self) -> str:
        """An admin token not yet exchanged for a console session (each is, once), of an
        organisation without OpenID Connect (with one, token sign-in is refused)."""
        with self.sessions() as fresh:
            if self.plain_org is None:
                org = f.make_org(fresh, f"Initech {uuid.uuid4().hex[:8]}")
                admin = f.make_user(fresh, org, role=Role.ORG_ADMIN)
                fresh.flush()
                self.plain_org = (org.id, admin.id)
            org = fresh.get_one(Organisation, self.plain_org[0])
            admin = fresh.get_one(User, self.plain_org[1])
            secret = f.admin_token(fresh, org, admin)
            fresh.commit()
        return secret

    def fill(self, template: Any) -> Any:
        if isinstance(template, str):
            for name, value in self.values.items():
                template = template.replace("{" + name + "}", value)
            return template
        if isinstance(template, list):
            return [self.fill(item) for item in template]
        if isinstance(template, dict):
            return {k: self.fill(v) for k, v in template.items()}
        return template


def hostile_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "enrollment_identity_header": IDENTITY_HEADER,
            "enrollment_webhook_secrets": HOOK_SECRET,
        }
    )


@pytest.fixture
def world(
    apps: Apps,
    settings: Settings,
    session: Session,
    sessions: SessionFactory,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> World:
    hold_tasks(monkeypatch)  # no worker changes the database between two snapshots
    app = apps.for_settings(hostile_settings(settings))
    tenant = build_target(session, settings, app)
    org = session.get_one(Organisation, tenant.org_id)
    admin = session.get_one(User, uuid.UUID(tenant.ids["admin"]))
    issuer = serve_discovery(httpserver, "/idp")
    oidc_providers.configure(
        session,
        organisation=org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=settings.outbound_policy(),
        issuer=issuer,
        client_id="odock-sync",
        client_secret="client-secret-0123456789abcdef",
    )
    spare_team = f.make_team(session, org, "Spare")
    spare_token = tokens.create_token(
        session, organisation=org, scope=TokenScope.SCIM, actor=f.SETUP
    )
    viewer = Viewer.for_user(admin)
    issued = inv.invite(
        session,
        viewer=viewer,
        email=f"invitee2@{org.slug}.globex.test",
        role=Role.USER,
        actor=Actor(Source.ADMIN, viewer.name, viewer.user_id),
        secret_key=settings.secret_key,
    )
    ack = make_token(
        settings.secret_key,
        purpose=REVIEW_ACK_PURPOSE,
        subject=tenant.ids["review"],
        actor="owner@globex.test",
        lifetime=timedelta(days=1),
    )
    session.commit()
    callback_id = session.scalars(
        select(OidcProvider.callback_id).where(OidcProvider.organisation_id == org.id)
    ).one()
    odock_secret = odock_bridge.add_signing_secret(
        session, organisation=org, secret_key=settings.secret_key, actor=f.SETUP
    )
    session.commit()
    world = World(tenant, app, sessions)
    world.writes = CommittedWrites(app.extensions[EXTENSION].engine)
    request.addfinalizer(world.writes.close)
    world.values = {
        **tenant.ids,
        "spare_team": str(spare_team.id),
        "spare_token": str(spare_token.token.id),
        "slug": tenant.slug,
        "domain": f"{tenant.slug}.globex.test",
        "issuer": issuer,
        "callback_id": callback_id,
        "enroll_token": issued.token,
        "ack_token": ack,
        "admin_token": tenant.admin_token,
        "invitee_email": issued.invitation.email,
        "odock_secret": odock_secret.secret,
    }
    return world


NOT_IMPLEMENTED = (501, "RFC 7644: bulk and /Me are not supported, answered 501 in SCIM JSON")

# Routes whose well-formed request (the control) is refused by design, and why.
CONTROL_REFUSED: dict[tuple[str, str], str] = {
    ("/static/<path:filename>", "GET"): "the app has no static folder: Flask's own route "
    "answers 404 for every file",
    **{
        (rule, "GET"): "a provider's answer without a started sign-in's state is refused "
        "(the probes start one: tests/security/hostile_requests.py oidc_probes)"
        for rule in (
            "/console/oidc/callback",
            "/console/oidc/callback/<callback_id>",
            "/enroll/oidc/callback",
            "/enroll/oidc/callback/<callback_id>",
        )
    },
    **{
        (rule, method): NOT_IMPLEMENTED[1]
        for rule in ("/scim/v2/Bulk", "/scim/v2/Me", "/scim/v2/Me/<path:_rest>")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    },
}

# Answers of 500 and above a route gives on purpose, and why.
SERVER_STATUSES: dict[str, tuple[int, str]] = {
    "/scim/v2/Bulk": NOT_IMPLEMENTED,
    "/scim/v2/Me": NOT_IMPLEMENTED,
    "/scim/v2/Me/<path:_rest>": NOT_IMPLEMENTED,
}


def expected_format(path: str) -> str:
    if path.startswith(("/static/", "/console/static/")):
        return "file"
    if path.startswith("/scim/v2"):
        return "scim"
    if path.startswith(("/console", "/enroll", "/reviews/acknowledge")):
        return "html"
    return "problem"


def problems_of(rule: str, sent: Sent, answer: Any) -> list[str]:
    """What is wrong with the answer to one hostile request (nothing: an empty list)."""
    text = answer.get_data(as_text=True)
    found = []
    allowed = SERVER_STATUSES.get(rule, (0, ""))[0]
    if answer.status_code >= 500 and answer.status_code != allowed:
        found.append(f"status {answer.status_code}")
    if "Traceback" in text or 'File "/' in text:
        found.append("a traceback in the body")
    if 400 <= answer.status_code < 600 and sent.method != "HEAD":  # a HEAD answer has no body
        kind = expected_format(sent.path)
        if kind == "scim":
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if (
                answer.mimetype != SCIM_TYPE
                or not isinstance(body, dict)
                or body.get("schemas") != [SCIM_ERROR]
                or body.get("status") != str(answer.status_code)
            ):
                found.append(f"not SCIM error JSON: {answer.mimetype} {text[:200]!r}")
        elif kind == "file":
            pass  # a static file's refusal: whichever page its prefix renders
        elif kind == "html":
            if answer.mimetype != "text/html":
                found.append(f"not an HTML page: {answer.mimetype} {text[:200]!r}")
        else:
            body = answer.get_json(silent=True) if answer.is_json else None
            if (
                answer.mimetype != "application/problem+json"
                or not isinstance(body, dict)
                or (body.get("status") != answer.status_code)
            ):
                found.append(f"not problem JSON: {answer.mimetype} {text[:200]!r}")
    return found


def run_probes(
    world: World, key: tuple[str, str], probes: list[Probe], *, control: bool = True
) -> list[str]:
    """Send each probe; the problems found, each with the request that caused it.

    Whether a refusal wrote: the statements the app's engine committed during it
    (CommittedWrites). And, for the catalogue of a write (control), every row of every
    table when all its probes were refused, against the last such snapshot while nothing
    has been committed since (so that a snapshot is taken per write route, not twice)."""
    rule, method = key
    target = ROUTES[key]
    failures = []
    allowed = AUDITED_REFUSALS.get(key, (frozenset(), ""))[0]
    committed = False  # anything, by any request of this route
    reached = False
    if control and method != "GET" and world.state is None:
        world.state = database_state(world.sessions)
    for probe in probes:
        sent = probe.build(world, target, method)
        world.writes.take()
        answer = send(world, sent)
        problems = problems_of(rule, sent, answer)
        taken = world.writes.take()
        committed = committed or bool(taken)
        written = [w for w in taken if _table_of(w) not in allowed]
        if answer.status_code >= 400 and written:
            problems.append(f"a refusal committed {written}")
        reached = reached or answer.status_code < 400
        if problems:
            failures.append(f"{method} {rule} [{probe.name}] {sent.describe()}: {problems}")
    if not control:
        return failures
    if method != "GET" and not reached and world.state is not None:
        after = database_state(world.sessions)
        changed = sorted(t for t in after if after[t] != world.state[t] and t not in allowed)
        if changed:
            failures.append(f"{method} {rule}: refusals changed rows of {changed}")
        world.state = after
    elif reached or committed:
        world.state = None
    # The control: the same request without the hostile part gets through, so the probes
    # had what it takes to reach the handler (unless one did, and changed what it acts on:
    # then a second delete, approval or acceptance is refused by the handler itself).
    plain = send(world, base_request(world, target, method))
    if world.writes.take() or plain.status_code < 400:
        world.state = None
    world.controls[key] = plain.status_code
    # A 409 or 429 is the handler's own word (the object is not in a state to act on, or
    # was acted on moments ago).
    through = plain.status_code < 400 or plain.status_code in (409, 429)
    if not through and not reached and key not in CONTROL_REFUSED:
        text = plain.get_data(as_text=True)[:300]
        failures.append(f"{method} {rule}: the well-formed request got {plain.status_code}: {text}")
    return failures


def _table_of(statement: str) -> str:
    match = WRITTEN_TABLE.match(statement)
    return match.group(1) if match else statement


# Routes that end what others need (the console session, the OpenID Connect provider):
# last in the catalogue, never drawn by hypothesis.
LAST = ("/console/sign-out", "/api/v1/sign-in/oidc")


def ordered_routes() -> list[tuple[str, str]]:
    """Reads, then writes, then deletions, then signing out: a write hostile input gets
    through (as it should, when it is not hostile after all) spoils no later route."""
    rank = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}

    def order(key: tuple[str, str]) -> tuple[int, str]:
        return (3 if key[0] in LAST else rank[key[1]], key[0])

    return sorted(ROUTES, key=order)


def test_no_hostile_input_gets_a_server_error(world: World) -> None:
    """Every route's catalogue; every problem found is listed, not only the first."""
    failures: list[str] = []
    for key in ordered_routes():
        failures += run_probes(world, key, catalogue(key[0], key[1], ROUTES[key]))
    assert not failures, "\n".join(failures)


@hypothesis_settings(FUZZ, max_examples=max(FUZZ.max_examples, 200))
@given(data=st.data())
def test_hypothesis_draws_no_server_error(world: World, data: st.DataObject) -> None:
    keys = [key for key in ordered_routes() if key[0] not in LAST]
    key = data.draw(st.sampled_from(keys))
    probe = data.draw(probe_strategy(key[0], key[1], ROUTES[key]))
    failures = run_probes(world, key, [probe], control=False)
    assert not failures, "\n".join(failures)


def test_every_admin_api_write_refuses_a_field_it_does_not_read(world: World) -> None:
    """A route that read no body took any: `{"note": "seen"}` acknowledged a finding and the
    note was dropped without a word, where approve (whose body, if sent, must be `{}`)
    answered 400. Every write of the admin API refuses a field it does not read, before it
    changes anything."""
    accepted = []
    for key in ordered_routes():
        rule, method = key
        target = ROUTES[key]
        if target.protocol != "admin" or method not in ("POST", "PUT", "PATCH") or rule in LAST:
            continue
        sent = base_request(world, target, method)
        document = {**json.loads(sent.body or b"{}"), "zz_unknown": 1}
        sent.body, sent.content_type = json.dumps(document).encode(), "application/json"
        world.writes.take()
        answer = send(world, sent)
        written = world.writes.take()
        if answer.status_code != 400 or written:
            accepted.append(f"{method} {rule}: {answer.status_code} {written[:1]}")
    assert not accepted, "\n".join(accepted)
