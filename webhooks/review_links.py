"""The signed acknowledgement link sent in review notifications: a page and one button.

GET only shows what would be acknowledged (mail scanners follow links); the POST from the
page acknowledges. Errors are small HTML pages, never problem JSON.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, render_template

from models.access import require_not_leaver
from models.actions import reviews
from models.actor import Actor
from models.entities import RevocationReview, User
from models.enums import FindingState, Source
from models.errors import DomainError, NotFound
from models.signed_links import REVIEW_ACK_PURPOSE, LinkClaim, read_token
from webhooks.context import db_session, settings
from webhooks.errors import register_protocol_renderer, status_of
from webhooks.html_pages import harden

PREFIX = "/reviews/acknowledge"
HOOK_RECIPIENT = "hook:"  # how a link sent to a notification hook names its recipient

bp = Blueprint("review_links", __name__, url_prefix=PREFIX, template_folder="templates")


@bp.get("/<token>")
def confirm(token: str) -> Response:
    claim, review = _load(token)
    html = render_template(
        "reviews/acknowledge.html",
        heading=_heading(review),
        open_count=sum(f.state is FindingState.OPEN for f in review.findings),
        # A person sees their address; a hook's link names no internal hook id.
        recipient="" if claim.actor.startswith(HOOK_RECIPIENT) else claim.actor,
    )
    return harden(Response(html, mimetype="text/html"))


@bp.post("/<token>")
def acknowledge(token: str) -> Response:
    claim, review = _load(token)
    session = db_session()
    count = reviews.acknowledge_review(
        session, review=review, actor=Actor(Source.SYSTEM, f"link:{claim.actor}")
    )
    session.commit()
    plural = "" if count == 1 else "s"
    return _page("Acknowledged", f"{count} finding{plural} acknowledged.", tone="ok")


def _heading(review: RevocationReview) -> str:
    user = db_session().get(User, review.user_id) if review.user_id else None
    if review.revocation_id is not None and user is not None:
        return f"Revocation review for {user.email}"
    return f"Access review: {reviews.cause_message(review, user)}"


def _load(token: str) -> tuple[LinkClaim, RevocationReview]:
    claim = read_token(settings().secret_key, token, purpose=REVIEW_ACK_PURPOSE)
    try:
        review = db_session().get(RevocationReview, uuid.UUID(claim.subject))
    except ValueError:
        review = None
    if review is None:
        raise NotFound("this review no longer exists")
    require_not_leaver(db_session(), review.organisation_id, claim.actor)
    return claim, review


def _page(title: str, message: str, *, tone: str = "", status: int = 200) -> Response:
    html = render_template("reviews/message.html", title=title, message=message, tone=tone)
    return harden(Response(html, status=status, mimetype="text/html"))


def render_error(error: Exception) -> Response:
    if isinstance(error, DomainError):
        return _page("Cannot acknowledge", error.message, tone="bad", status=status_of(error))
    status = getattr(error, "code", None) or 500
    message = "Something went wrong." if status >= 500 else "This link cannot be used."
    return _page("Cannot acknowledge", message, tone="bad", status=int(status))


register_protocol_renderer(PREFIX, render_error)
