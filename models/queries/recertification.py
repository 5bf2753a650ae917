"""Reading recertification campaigns and their findings, as a viewer may see them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, false, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from models.access import Viewer, managed_team_ids
from models.actions import recertification
from models.entities import RecertificationCampaign, ReviewFinding, RevocationReview
from models.enums import FindingState
from models.errors import Forbidden, NotFound
from models.queries.reviews import finding_views


def campaign_summary(session: Session, campaign: RecertificationCampaign) -> dict[str, Any]:
    review = session.get(RevocationReview, campaign.review_id) if campaign.review_id else None
    counts = dict(
        session.execute(
            select(ReviewFinding.state, func.count())
            .where(ReviewFinding.review_id == campaign.review_id)
            .group_by(ReviewFinding.state)
        ).all()
    )
    return {
        "id": str(campaign.id),
        "slot": campaign.slot,
        "review_id": str(campaign.review_id) if campaign.review_id else None,
        "status": _status(campaign, review),
        "opened_by": campaign.opened_by,
        "opened_at": campaign.opened_at.isoformat(),
        "deadline_at": campaign.deadline_at.isoformat(),
        "enforced_at": campaign.enforced_at.isoformat() if campaign.enforced_at else None,
        "findings": {state.value: int(n) for state, n in counts.items()},
    }


def _status(campaign: RecertificationCampaign, review: RevocationReview | None) -> str:
    if review is not None and review.status.value == "resolved":
        return "resolved"
    return "past_deadline" if campaign.enforced_at else "open"


def list_campaigns(
    session: Session, viewer: Viewer, *, limit: int, after: uuid.UUID | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; a cursor is the last id of the page."""
    query = select(RecertificationCampaign).where(
        RecertificationCampaign.organisation_id == viewer.organisation_id
    )
    if after is not None:
        anchor = _campaign(session, viewer, after)
        query = query.where(
            tuple_(RecertificationCampaign.opened_at, RecertificationCampaign.id)
            < tuple_(literal(anchor.opened_at), literal(anchor.id))
        )
    rows = session.scalars(
        query.order_by(
            RecertificationCampaign.opened_at.desc(), RecertificationCampaign.id.desc()
        ).limit(limit + 1)
    ).all()
    page = rows[:limit]
    cursor = str(page[-1].id) if len(rows) > limit else None
    return [campaign_summary(session, c) for c in page], cursor


def _campaign(session: Session, viewer: Viewer, campaign_id: uuid.UUID) -> RecertificationCampaign:
    campaign = session.get(RecertificationCampaign, campaign_id)
    if campaign is None or campaign.organisation_id != viewer.organisation_id:
        raise NotFound("campaign not found")
    return campaign


def campaign_detail(
    session: Session,
    viewer: Viewer,
    campaign_id: uuid.UUID,
    *,
    state: FindingState | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The campaign, its report, and the findings this viewer may see (a page of them)."""
    campaign = _campaign(session, viewer, campaign_id)
    query = select(ReviewFinding).where(
        ReviewFinding.review_id == campaign.review_id, _visible(session, viewer)
    )
    if state is not None:
        query = query.where(ReviewFinding.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    findings = session.scalars(query.order_by(ReviewFinding.id).offset(offset).limit(limit)).all()
    return {
        **campaign_summary(session, campaign),
        "scope": campaign.scope,
        "report": campaign.report,
        "findings_visible": int(total or 0),
        "items": _findings(session, findings),
    }


def _findings(session: Session, findings: Sequence[ReviewFinding]) -> list[dict[str, Any]]:
    return [
        {**view, "owner_user_id": str(f.owner_user_id) if f.owner_user_id else None}
        for f, view in zip(findings, finding_views(session, findings), strict=True)
    ]


def _visible(session: Session, viewer: Viewer) -> ColumnElement[bool]:
    if viewer.is_admin:
        return ReviewFinding.id.is_not(None)
    mine = ReviewFinding.owner_user_id == viewer.user_id if viewer.user_id else false()
    teams = managed_team_ids(session, viewer)
    return or_(mine, ReviewFinding.team_id.in_(teams)) if teams else mine


def finding_for_decision(session: Session, viewer: Viewer, finding_id: uuid.UUID) -> ReviewFinding:
    """The finding, if this viewer may decide it: its owner, its team's manager, an admin."""
    finding = recertification.campaign_finding(session, viewer.organisation_id, finding_id)
    if viewer.is_admin:
        return finding
    allowed = session.scalar(
        select(ReviewFinding.id).where(ReviewFinding.id == finding.id, _visible(session, viewer))
    )
    if allowed is None:
        raise NotFound("recertification finding not found")
    return finding


def campaign_of(session: Session, finding: ReviewFinding) -> RecertificationCampaign:
    return session.scalars(
        select(RecertificationCampaign).where(
            RecertificationCampaign.review_id == finding.review_id
        )
    ).one()


def finding_detail(session: Session, finding: ReviewFinding) -> dict[str, Any]:
    return _findings(session, [finding])[0]


def require_admin_finding(session: Session, viewer: Viewer, finding_id: uuid.UUID) -> ReviewFinding:
    if not viewer.is_admin:
        raise Forbidden("restoring a key needs the Organisation Admin role")
    return recertification.campaign_finding(session, viewer.organisation_id, finding_id)
