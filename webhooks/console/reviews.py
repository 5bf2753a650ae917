"""Reviews and their findings: resolve, acknowledge, reassign, as the API does them.

Managers see the reviews touching their teams and change only their teams' findings: the
same reads and checks as the API (models/queries/reviews).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Response
from sqlalchemy.orm import Session

from models import audit
from models.access import managed_team_ids
from models.actions import reviews as review_actions
from models.actor import Actor
from models.entities import ReviewFinding
from models.enums import ReviewStatus
from models.queries.reviews import (
    MAX_PAGE,
    ReviewFilter,
    list_reviews,
    reassignment_candidates,
    reassignment_owner,
    review_detail,
    visible_finding,
    visible_review,
)
from webhooks.api.params import enum_param, int_param, uuid_param
from webhooks.api.review_schemas import DecideFinding, ReassignFinding
from webhooks.console.web import bp, done, form_body, page, signed_in
from webhooks.context import db_session

LISTED = 100


@bp.get("/reviews")
def reviews() -> Response:
    viewer = signed_in().viewer
    status = enum_param("status", ReviewStatus)
    items, cursor = list_reviews(
        db_session(), viewer, ReviewFilter(status=status), limit=LISTED, after=uuid_param("cursor")
    )
    return page("reviews.html", reviews=items, next_cursor=cursor, status=status)


@bp.get("/reviews/<uuid:review_id>")
def review(review_id: uuid.UUID) -> Response:
    viewer = signed_in().viewer
    session = db_session()
    users, teams = reassignment_candidates(session, viewer)
    limit = int_param("limit", MAX_PAGE, low=1, high=MAX_PAGE)
    detail = review_detail(
        session,
        viewer,
        review_id,
        limit=limit,
        after=uuid_param("cursor"),
        before=uuid_param("before"),
    )
    return page(
        "review.html",
        review=detail,
        candidates={"users": users, "teams": teams},
        limit=None if limit == MAX_PAGE else limit,
    )


@bp.get("/findings/<uuid:finding_id>")
def finding(finding_id: uuid.UUID) -> Response:
    found = visible_finding(db_session(), signed_in().viewer, finding_id)
    return done("console.review", "", review_id=found.review_id)


@bp.post("/reviews/<uuid:review_id>/acknowledge")
def acknowledge_review(review_id: uuid.UUID) -> Response:
    current = signed_in()
    session = db_session()
    found = visible_review(session, current.viewer, review_id)
    teams = None if current.viewer.is_admin else managed_team_ids(session, current.viewer)
    review_actions.acknowledge_review(session, review=found, actor=current.actor, team_ids=teams)
    session.commit()
    return done("console.review", "acknowledged", review_id=review_id)


@bp.post("/findings/<uuid:finding_id>/resolve")
def resolve(finding_id: uuid.UUID) -> Response:
    note = form_body(DecideFinding).note
    return _on_finding(
        finding_id,
        "resolved",
        lambda session, found, actor: review_actions.resolve_finding(
            session, finding=found, actor=actor, note=note
        ),
    )


@bp.post("/findings/<uuid:finding_id>/acknowledge")
def acknowledge(finding_id: uuid.UUID) -> Response:
    return _on_finding(
        finding_id,
        "acknowledged",
        lambda session, found, actor: review_actions.acknowledge_finding(
            session, finding=found, actor=actor
        ),
    )


@bp.post("/findings/<uuid:finding_id>/reassign")
def reassign(finding_id: uuid.UUID) -> Response:
    body = form_body(ReassignFinding)
    viewer = signed_in().viewer

    def hand_over(session: Session, found: ReviewFinding, actor: Actor) -> object:
        to_user, to_team = reassignment_owner(
            session, viewer, user_id=body.user_id, team_id=body.team_id
        )
        return review_actions.reassign_finding(
            session, finding=found, actor=actor, to_user=to_user, to_team=to_team, note=body.note
        )

    return _on_finding(finding_id, "reassigned", hand_over)


def _on_finding(
    finding_id: uuid.UUID, notice: str, act: Callable[[Session, ReviewFinding, Actor], object]
) -> Response:
    """A finding the signed-in person may change, changed by `act` as them, committed."""
    current = signed_in()
    session = db_session()
    found = visible_finding(session, current.viewer, finding_id, to_change=True)
    with audit.keeping_refusals(session):
        act(session, found, current.actor)
    session.commit()
    return done("console.review", notice, review_id=found.review_id)
