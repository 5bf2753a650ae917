"""The console's first page: sources, what waits for someone, the last 30 days in charts."""

from __future__ import annotations

from typing import Any

from flask import Response

from models.base import utcnow
from models.enums import ChangeStatus, SyncRunStatus
from models.queries.directory import list_organisation_runs
from models.queries.mass_change import list_holds
from models.queries.reviews import open_reviews_by_urgency
from models.queries.revocation_stats import revocations_per_day, time_to_kill_per_day
from models.source_health import failing_hooks, open_incidents, source_statuses
from webhooks.console.charts import Chart, bar_chart, duration
from webhooks.console.web import bp, page, signed_in
from webhooks.context import db_session

CHART_DAYS = 30


@bp.get("")
def overview() -> Response:
    viewer = signed_in().viewer
    session = db_session()
    context: dict[str, Any] = {"urgency": open_reviews_by_urgency(session, viewer)}
    if viewer.is_admin:
        context.update(_admin_context(viewer.organisation_id))
    return page("overview.html", **context)


def _admin_context(organisation_id: Any) -> dict[str, Any]:
    session, now = db_session(), utcnow()
    return {
        "sources": [
            s.view(now) for s in source_statuses(session, organisation_id=organisation_id, now=now)
        ],
        "incidents": open_incidents(session, organisation_id=organisation_id),
        "failing_hooks": failing_hooks(session, organisation_id=organisation_id),
        "quarantined": list_organisation_runs(
            session, organisation_id, status=SyncRunStatus.QUARANTINED, limit=20
        ),
        "holds": list_holds(session, organisation_id, status=ChangeStatus.HELD, limit=20),
        "charts": _charts(organisation_id),
    }


def _charts(organisation_id: Any) -> list[Chart]:
    session, now = db_session(), utcnow()
    revoked = revocations_per_day(session, organisation_id, days=CHART_DAYS, now=now)
    killed = time_to_kill_per_day(session, organisation_id, days=CHART_DAYS, now=now)
    total = sum(figure.count for figure in revoked)
    measured = [figure for figure in killed if figure.count]
    slowest = max((figure.value for figure in measured), default=0.0)
    return [
        bar_chart(
            "Revocations per day",
            revoked,
            text=lambda figure: f"{figure.count} revoked",
            summary=f"{total} revocations in the last {CHART_DAYS} days.",
        ),
        bar_chart(
            "Time to kill (median per day)",
            killed,
            text=lambda figure: (
                f"{duration(figure.value)} (of {figure.count})" if figure.count else "none"
            ),
            summary=(
                f"Slowest daily median: {duration(slowest)}; from the revocation to the "
                "gateway's acknowledgement of its keys."
                if measured
                else f"No gateway acknowledgements in the last {CHART_DAYS} days."
            ),
        ),
    ]
