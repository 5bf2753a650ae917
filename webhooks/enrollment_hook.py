"""The signed acceptance webhook from Odock's sign-in flow (Standard Webhooks).

POST /hooks/enrollment/<organisation slug> with {"token", "email", "name"}: the sign-in flow
has verified the email; the signature is checked on the raw body before anything is parsed,
a replayed webhook-id is refused, and a stale timestamp is refused.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from pydantic import Field

from connectors import signed_webhooks
from models.actions import invitations as invitation_actions
from models.actions.deliveries import record_delivery
from models.actions.organisations import get_organisation_by_slug
from models.base import utcnow
from models.entities import ReceivedDelivery
from models.errors import Conflict, NotFound
from models.secrets import hash_secret
from webhooks.body import RequestBody, parse_body, read_body
from webhooks.context import db_session, settings
from webhooks.errors import Unauthorized, domain_problem, render_error
from webhooks.route_credentials import MissingCredentials

bp = Blueprint("enrollment_hook", __name__, url_prefix="/hooks")

CHANNEL = "enrollment"


class EnrollmentAccepted(RequestBody):
    token: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)


class Replayed(Conflict):
    code = "replayed"


@bp.errorhandler(MissingCredentials)
def _missing_signature(error: MissingCredentials) -> Response:
    """Signature headers a head lacks (webhooks.route_credentials), refused as verify does."""
    return render_error(domain_problem)(_rejected(error.reason))


@bp.post("/enrollment/<org_slug>")
def accepted(org_slug: str) -> dict[str, Any]:
    secrets = settings().enrollment_webhook_secret_list
    if not secrets:
        raise NotFound("the enrollment webhook is not configured")
    try:
        webhook_id = signed_webhooks.verify(
            secrets,
            body=read_body(),
            headers=dict(request.headers),
            tolerance_seconds=settings().enrollment_webhook_tolerance_seconds,
        )
    except signed_webhooks.SignatureRejected as exc:
        raise _rejected(exc.reason) from None
    session = db_session()
    organisation = get_organisation_by_slug(session, org_slug)
    body = parse_body(EnrollmentAccepted)
    # The token is a secret: the stored delivery keeps only its hash.
    payload = {"email": body.email, "token_sha256": hash_secret(body.token)}
    recorded = record_delivery(
        session,
        organisation_id=organisation.id,
        channel=CHANNEL,
        delivery_id=webhook_id[:255],
        payload=payload,
    )
    if not recorded.is_new:
        raise Replayed(f"webhook {webhook_id} was already received", webhook_id=webhook_id)
    try:
        result = invitation_actions.accept_invitation(
            session,
            token=body.token,
            email=body.email,
            name=body.name,
            organisation_id=organisation.id,
        )
    except invitation_actions.AccountExists as refused:  # the refusal's audit is kept
        _answered(recorded.delivery, "rejected", refused.message)
        session.commit()
        raise
    _answered(recorded.delivery, "processed", f"accepted invitation {result.invitation.id}")
    session.commit()
    return {
        "invitation_id": str(result.invitation.id),
        "user_id": str(result.user.id),
        "user_status": result.user.status.value,
        "created": result.created,
    }


def _rejected(reason: str) -> Unauthorized:
    return Unauthorized(f"signature rejected: {reason}")


def _answered(delivery: ReceivedDelivery, status: str, outcome: str) -> None:
    delivery.status = status
    delivery.processed_at = utcnow()
    delivery.outcome = outcome
