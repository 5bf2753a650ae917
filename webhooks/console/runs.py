"""Directory runs: the list, a run's plan as a diff, and Approve or Discard of a held one.

Admins only, as in the API; the actions are the API's (models/directory/approvals),
acting as the signed-in person.
"""

from __future__ import annotations

import uuid

from flask import Response

from models.access import require_admin
from models.directory import approvals
from models.directory import runs as sync_runs
from models.enums import SyncRunStatus
from models.queries.directory import list_organisation_runs
from models.queries.plan_diff import plan_diff
from webhooks.console.web import bp, done, page, signed_in
from webhooks.context import db_session

LISTED = 100


@bp.get("/runs")
def runs() -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    found = list_organisation_runs(db_session(), viewer.organisation_id, limit=LISTED)
    return page("runs.html", runs=found)


@bp.get("/runs/<uuid:run_id>")
def run(run_id: uuid.UUID) -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    session = db_session()
    found = sync_runs.get_run(session, viewer.organisation_id, run_id)
    return page(
        "run.html",
        run=found,
        diff=plan_diff(session, found),
        waiting=found.status is SyncRunStatus.QUARANTINED,
    )


@bp.post("/runs/<uuid:run_id>/approve")
def approve(run_id: uuid.UUID) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = sync_runs.get_run(session, current.viewer.organisation_id, run_id, for_update=True)
    approvals.request_approval(session, run=found, actor=current.actor)
    session.commit()
    return done("console.run", "approving", run_id=run_id)


@bp.post("/runs/<uuid:run_id>/discard")
def discard(run_id: uuid.UUID) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = sync_runs.get_run(session, current.viewer.organisation_id, run_id)
    approvals.discard_run(session, run=found, actor=current.actor)
    session.commit()
    return done("console.run", "discarded", run_id=run_id)
