"""IdP push events: Okta Event Hooks and Standard Webhooks-signed generic events.

The hot path of the service: authenticate on the raw body before parsing, store the delivery
once under its id (batched with the process's concurrent requests), answer at once; a drain
task applies the events after commit.
"""

from __future__ import annotations

import functools
from typing import Any

import structlog
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import Counter
from sqlalchemy.exc import DataError, IntegrityError

from connectors import generic_events, okta_hooks, signed_webhooks
from models.actions import idp_events
from models.actions.deliveries import Incoming
from models.actions.event_hooks import HookCredentials, cached_hook_credentials
from webhooks.body import UnacceptableValue, UnreadableBody, decode_json, read_body
from webhooks.context import EXTENSION, app_state, settings
from webhooks.errors import problem
from webhooks.group_commit import GroupCommit
from webhooks.route_credentials import OKTA_HEADERS_REQUIRED, Credentials, MissingCredentials
from worker import wakeups

log = structlog.get_logger(__name__)
bp = Blueprint("idp_hooks", __name__, url_prefix="/hooks")
STORE = "odock_sync.idp_deliveries"


def _install_group_commit(setup: BlueprintSetupState) -> None:
    """Concurrent requests of a process store their deliveries in one statement (see
    webhooks.group_commit): under load, one round trip and one commit serve many."""
    state = setup.app.extensions[EXTENSION]

    def store(incoming: list[Incoming]) -> list[bool]:
        with state.autocommit_engine.begin() as connection:
            accepted = idp_events.accept_deliveries(connection, incoming)
        for organisation_id in accepted.drains_to_wake:  # committed: the drain will see them
            wakeups.wake(idp_events.TASK_DRAIN, {"organisation_id": str(organisation_id)})
        return accepted.new

    setup.app.extensions[STORE] = GroupCommit(store, split_on=_refused_by_the_database)


def _refused_by_the_database(error: Exception) -> bool:
    """A failure one delivery's values cause, not the database's state: its batch is split."""
    return isinstance(error, IntegrityError | DataError)


bp.record(_install_group_commit)


RECEIVED = Counter(
    "odock_idp_deliveries_received_total", "IdP event deliveries stored", ["channel"]
)
DUPLICATES = Counter(
    "odock_idp_deliveries_duplicate_total", "IdP event deliveries seen before", ["channel"]
)
REJECTED = Counter(
    "odock_idp_deliveries_rejected_total", "IdP event deliveries refused", ["channel", "reason"]
)

OKTA, EVENTS = idp_events.CHANNEL_OKTA, idp_events.CHANNEL_EVENTS


# An unknown organisation and one without this hook configured answer alike, so the receiver
# does not tell which organisation slugs exist; the logs and metrics keep the difference.
UNKNOWN_HOOK = ("unknown_hook", "no event hook is configured at this address")


class Refused(Exception):
    """A delivery refused before anything is stored; rendered as problem JSON."""

    def __init__(self, status: int, reason: str, detail: str, *, log_reason: str = "") -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.log_reason = log_reason or reason


@bp.errorhandler(Refused)
def _refused(error: Refused) -> Response:
    channel = OKTA if "/okta/" in request.path else EVENTS
    REJECTED.labels(channel, error.log_reason).inc()
    log.info("idp_hook.refused", channel=channel, reason=error.log_reason, path=request.path)
    return problem(error.status, error.reason, error.detail)


@bp.errorhandler(MissingCredentials)
def _missing_credentials(error: MissingCredentials) -> Response:
    """The credentials a head lacks (webhooks.route_credentials), refused as the delivery's
    own check refuses them."""
    if error.kind is Credentials.OKTA_HOOK:
        return _refused(Refused(401, "unauthorized", error.reason))
    return _refused(Refused(401, _signature_reason(error.reason), error.reason))


@bp.get("/okta/<slug>")
def okta_verify(slug: str) -> dict[str, str]:
    """Okta's one-time verification: echo the challenge, only to the configured secret."""
    _okta_credentials(slug)
    challenge = request.headers.get(okta_hooks.VERIFICATION_HEADER, "")
    if not challenge or len(challenge) > 1000:
        raise Refused(400, "missing_challenge", "X-Okta-Verification-Challenge is required")
    return {"verification": challenge}


@bp.post("/okta/<slug>")
def okta_deliver(slug: str) -> tuple[dict[str, Any], int]:
    credentials = _okta_credentials(slug)
    payload = _json(_raw_body())
    try:
        delivery_id = okta_hooks.delivery_id(payload)
    except okta_hooks.NotAnOktaDelivery as exc:
        raise Refused(400, "invalid_payload", str(exc)) from None
    return _store(credentials, OKTA, delivery_id, payload, new_status=200)


@bp.post("/events/<slug>")
def generic_deliver(slug: str) -> tuple[dict[str, Any], int]:
    credentials = _credentials(slug)
    secrets = credentials.signing_secrets(settings().secret_key)
    if not secrets:
        raise Refused(404, *UNKNOWN_HOOK, log_reason="not_configured")
    body = _raw_body()
    try:
        delivery_id = signed_webhooks.verify(
            secrets,
            body=body,
            headers=request.headers,  # type: ignore[arg-type]
            tolerance_seconds=settings().event_timestamp_tolerance,
        )
    except signed_webhooks.SignatureRejected as exc:
        raise Refused(401, _signature_reason(exc.reason), exc.reason) from None
    if len(delivery_id) > 255:
        raise Refused(400, "invalid_payload", "webhook-id must be at most 255 characters")
    payload = _json(body)
    try:
        generic_events.raw_events(payload)
    except generic_events.NotAnEventsBody as exc:
        raise Refused(400, "invalid_payload", str(exc)) from None
    return _store(credentials, EVENTS, delivery_id, payload, new_status=202)


def _store(
    credentials: HookCredentials, channel: str, delivery_id: str, payload: Any, *, new_status: int
) -> tuple[dict[str, Any], int]:
    group_commit: GroupCommit[Incoming, bool] = current_app.extensions[STORE]
    try:
        is_new = group_commit.submit(
            Incoming(credentials.organisation_id, channel, delivery_id, payload)
        )
    except IntegrityError:
        # The delivery's one foreign key: the organisation was deleted while this process
        # still held its hook's credentials (EVENT_HOOK_CACHE_SECONDS).
        raise Refused(404, *UNKNOWN_HOOK, log_reason="organisation_gone") from None
    except DataError:
        raise Refused(
            400, "invalid_payload", "the database refused a value of this delivery"
        ) from None
    if not is_new:
        DUPLICATES.labels(channel).inc()
        return {"status": "duplicate", "delivery_id": delivery_id}, 200
    RECEIVED.labels(channel).inc()
    return {"status": "accepted", "delivery_id": delivery_id}, new_status


def _credentials(slug: str) -> HookCredentials:
    credentials = None
    if len(slug) <= 64:
        ttl = settings().event_hook_cache_seconds
        state = app_state()
        sessions = functools.partial(state.sessions, bind=state.autocommit_engine)
        credentials = cached_hook_credentials(sessions, slug, ttl_seconds=ttl)
    if credentials is None:
        raise Refused(404, *UNKNOWN_HOOK)
    return credentials


def _okta_credentials(slug: str) -> HookCredentials:
    credentials = _credentials(slug)
    if credentials.okta_secret_hash is None:
        raise Refused(404, *UNKNOWN_HOOK, log_reason="not_configured")
    if not credentials.okta_authorised(settings().secret_key, request.headers):
        raise Refused(401, "unauthorized", OKTA_HEADERS_REQUIRED)
    return credentials


def _raw_body() -> bytes:
    """The body, refused as too large before it is read whole."""
    return read_body(too_large=_too_large)  # the limit: webhooks.body_limits


def _too_large(limit: int) -> Refused:
    return Refused(413, "too_large", f"the body must be at most {limit} bytes")


def _json(body: bytes) -> Any:
    try:
        return decode_json(body)
    except UnreadableBody as exc:
        raise Refused(400, "invalid_json", exc.message) from None
    except UnacceptableValue as exc:
        raise Refused(400, "invalid_payload", exc.message) from None


def _signature_reason(reason: str) -> str:
    if reason.startswith("missing"):
        return "missing_signature"
    if "tolerance" in reason or "timestamp" in reason:
        return "stale_timestamp"
    return "bad_signature"
