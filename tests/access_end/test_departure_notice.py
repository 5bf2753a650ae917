"""The departure notice: days before the end date, a real worker and beat (clocks ahead)
send it to the organisation's webhook (a real HTTP server) with the blast-radius preview, to
the person's team manager and the owners of the keys it touches; the review opens early; one
notice per date, and a new date arms a new one."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from models.actions import access_end, departure_notices
from models.base import utcnow
from models.entities import AuditEvent, RevocationReview, User
from models.enums import ReviewCause, Role, TeamRole
from tests.access_end.conftest import LEAD, TICK
from tests.support import factories as f
from tests.support.wait import wait_until


def _notices(hooks) -> list[dict]:
    return [r.json for r in hooks.at("departures") if r.json["type"] == departure_notices.EVENT]


def test_the_notice_reaches_a_real_webhook_with_the_preview_once_per_date(
    session,
    sessions,
    settings,
    hooks,
    run_ahead,
) -> None:
    org = f.make_org(session)
    leaver = f.make_user(session, org, email="leaver@example.com")
    manager = f.make_user(session, org, email="manager@example.com")
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    team = f.make_team(session, org, "Platform")
    f.add_member(session, team, leaver)
    f.add_member(session, team, manager, TeamRole.MANAGER)
    own_key = f.make_key(session, org, owner=leaver)
    team_key = f.make_key(session, org, team=team, created_by=leaver)
    budget = f.make_budget(session, org, leaver)
    f.make_hook(
        session,
        org.id,
        hooks.url("departures"),
        secret_key=settings.secret_key,
        name="departures",
        events=[departure_notices.EVENT],
    )
    ends = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    access_end.set_access_end(session, user=leaver, ends_at=ends, actor=f.SETUP)
    ids = {"leaver": leaver.id, "manager": manager.id, "admin": admin.id, "budget": budget.id}
    keys = {"own": str(own_key.id), "team": str(team_key.id)}
    session.commit()

    run_ahead(ends - timedelta(days=7) - LEAD)  # shortly before the notice is due

    (notice,) = wait_until(lambda: _notices(hooks), timeout=90, what="the departure notice")
    data = notice["data"]
    assert data["user"]["email"] == "leaver@example.com"
    assert data["access_ends_at"] == ends.isoformat() and data["notice_days"] == 7
    preview = data["preview"]
    assert [k["id"] for k in preview["keys"]] == [keys["own"]]
    assert [k["id"] for k in preview["team_keys"]] == [keys["team"]]
    assert [b["id"] for b in preview["budgets"]] == [str(ids["budget"])]
    review = session.scalars(
        select(RevocationReview).where(RevocationReview.cause == ReviewCause.DEPARTURE)
    ).one()
    assert data["review_id"] == str(review.id) and review.user_id == ids["leaver"]
    assert {fd.subject_id for fd in review.findings} == {team_key.id, ids["budget"]}
    sent = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.departure_notice_sent")
    ).one()
    assert sent.after["recipients"] == [str(ids["manager"])]
    session.commit()

    time.sleep(4 * TICK)  # more beats: still the one notice
    assert len(_notices(hooks)) == 1

    # An earlier date re-arms the notice (the clocks are now six days and a bit before it).
    person = session.get_one(User, ids["leaver"])
    earlier = ends - timedelta(days=1)
    access_end.set_access_end(session, user=person, ends_at=earlier, actor=f.SETUP)
    session.commit()
    wait_until(lambda: len(_notices(hooks)) == 2, timeout=60, what="a notice for the new date")
    assert _notices(hooks)[1]["data"]["access_ends_at"] == earlier.isoformat()
    time.sleep(4 * TICK)
    assert len(_notices(hooks)) == 2
