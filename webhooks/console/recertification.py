"""Key recertification in the console: open campaigns with their progress, and the findings
the signed-in person may answer (keep with a reason, rotate, revoke), decided by the same
operation as the API (models/actions/recertification.decide)."""

from __future__ import annotations

import uuid

from flask import Response

from models.actions import recertification
from models.enums import FindingState
from models.queries import recertification as queries
from webhooks.api.recertification_schemas import DecideRecertification
from webhooks.console.web import bp, done, form_body, offset_page, page, pager, signed_in
from webhooks.context import db_session

LISTED = 50
FINDINGS = 100
NOTICES = {
    "keep": "Kept: the finding is resolved with your reason.",
    "rotate": "A rotation was requested; the finding is resolved.",
    "revoke": "Revoked: the key is being disabled; the finding closes when the gateway confirms.",
}


@bp.get("/recertification")
def recertification_campaigns() -> Response:
    session = db_session()
    items, _ = queries.list_campaigns(session, signed_in().viewer, limit=LISTED, after=None)
    running = [c for c in items if c["status"] != "resolved"]
    return page("recertification.html", campaigns=running)


@bp.get("/recertification/<uuid:campaign_id>")
def recertification_campaign(campaign_id: uuid.UUID) -> Response:
    offset, limit = offset_page(default_limit=FINDINGS)
    detail = queries.campaign_detail(
        db_session(),
        signed_in().viewer,
        campaign_id,
        state=FindingState.OPEN,
        limit=limit,
        offset=offset,
    )
    total = detail["findings_visible"]
    return page(
        "recertification_campaign.html",
        campaign=detail,
        recert_notices=NOTICES,
        pages=pager(offset=offset, limit=limit, total=total, default_limit=FINDINGS),
    )


@bp.post("/recertification/findings/<uuid:finding_id>/decide")
def recertification_decide(finding_id: uuid.UUID) -> Response:
    current = signed_in()
    body = form_body(DecideRecertification)
    session = db_session()
    finding = queries.finding_for_decision(session, current.viewer, finding_id)
    campaign_id = queries.campaign_of(session, finding).id
    recertification.decide(
        session, finding=finding, decision=body.decision, reason=body.reason, actor=current.actor
    )
    session.commit()
    return done("console.recertification_campaign", body.decision.value, campaign_id=campaign_id)
