"""The signed acknowledgement link sent in review notifications: a page and one button.

GET only shows what would be acknowledged (mail scanners follow links); the POST from the
page acknowledges. Errors are small HTML pages, never problem JSON.
"""

from __future__ import annotations

import uuid
from html import escape

from flask import Blueprint, Response

from models.access import require_not_leaver
from models.actions import reviews
from models.actor import Actor
from models.entities import RevocationReview, User
from models.enums import FindingState, Source
from models.errors import DomainError, NotFound
from models.signed_links import LinkClaim, read_token
from webhooks.context import db_session, settings
from webhooks.errors import register_protocol_renderer, status_of

ACK_PURPOSE = "review.ack"
PREFIX = "/reviews/acknowledge"

bp = Blueprint("review_links", __name__, url_prefix=PREFIX)


@bp.get("/<token>")
def confirm(token: str) -> Response:
    claim, review = _load(token)
    open_count = sum(f.state is FindingState.OPEN for f in review.findings)
    body = (
        f"<h1>{escape(_heading(review))}</h1>"
        f"<p>{open_count} open finding(s). Acknowledging stops the reminders for you and "
        f"everyone else; it does not resolve anything.</p>"
        f'<form method="post"><button type="submit">Acknowledge as '
        f"{escape(claim.actor)}</button></form>"
    )
    return _page("Acknowledge review", body)


@bp.post("/<token>")
def acknowledge(token: str) -> Response:
    claim, review = _load(token)
    session = db_session()
    count = reviews.acknowledge_review(
        session, review=review, actor=Actor(Source.SYSTEM, f"link:{claim.actor}")
    )
    session.commit()
    return _page("Acknowledged", f"<h1>Acknowledged</h1><p>{count} finding(s) acknowledged.</p>")


def _heading(review: RevocationReview) -> str:
    user = db_session().get(User, review.user_id) if review.user_id else None
    if review.revocation_id is not None and user is not None:
        return f"Revocation review for {user.email}"
    return f"Access review: {reviews.cause_message(review, user)}"


def _load(token: str) -> tuple[LinkClaim, RevocationReview]:
    claim = read_token(settings().secret_key, token, purpose=ACK_PURPOSE)
    try:
        review = db_session().get(RevocationReview, uuid.UUID(claim.subject))
    except ValueError:
        review = None
    if review is None:
        raise NotFound("this review no longer exists")
    require_not_leaver(db_session(), review.organisation_id, claim.actor)
    return claim, review


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"</head><body>{body}</body></html>"
    )
    return Response(html, status=status, mimetype="text/html")


def render_error(error: Exception) -> Response:
    if isinstance(error, DomainError):
        return _page("Cannot acknowledge", f"<h1>{escape(error.message)}</h1>", status_of(error))
    status = getattr(error, "code", None) or 500
    message = "Something went wrong" if status >= 500 else "This link cannot be used"
    return _page("Error", f"<h1>{message}</h1>", int(status))


register_protocol_renderer(PREFIX, render_error)
