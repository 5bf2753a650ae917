"""Upcoming departures: who leaves within 30 days, when, who set the date, and what they hold
(each person links to the blast-radius preview of revoking them)."""

from __future__ import annotations

from flask import Response

from models.base import utcnow
from models.queries.departures import PAGE, upcoming_departures
from webhooks.console.web import bp, offset_page, page, pager, signed_in
from webhooks.context import db_session

DAYS = 30


@bp.get("/departures")
def departures() -> Response:
    viewer = signed_in().viewer
    offset, limit = offset_page(default_limit=PAGE)
    leaving = upcoming_departures(
        db_session(), viewer, now=utcnow(), days=DAYS, limit=limit, offset=offset
    )
    return page(
        "departures.html",
        departures=leaving.departures,
        total=leaving.total,
        days=DAYS,
        pages=pager(offset=offset, limit=limit, total=leaving.total, default_limit=PAGE),
    )
