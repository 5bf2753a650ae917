"""The periodic sweep finds drift after revocations, fixes it, and is idempotent."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from models.actions import lifecycle, reviews, teams
from models.actions.review_sweep import (
    LATE_OPEN_LOCK_WAIT,
    open_missing_review,
    revocations_missing_review,
    sweep_reviews,
    unrecorded_usage,
)
from models.base import utcnow
from models.db import is_transient
from models.entities import AuditEvent, OutboxMessage, RevocationReview, VirtualApiKey
from models.enums import FindingState, ReviewStatus, Role, Severity, TeamRole
from tests.reviews.conftest import REVIEWER, build_leaver, findings_by_kind, revoke_and_review
from tests.support import factories as f
from tests.support.sql_events import statements_sent


def _state(session):
    return (
        session.scalar(select(func.count(AuditEvent.id))),
        session.scalar(select(func.count(OutboxMessage.id))),
    )


def test_a_key_created_after_the_revocation_is_revoked_and_reviewed_once(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    late = f.make_key(session, world.org, owner=world.person)

    first = sweep_reviews(session, actor=REVIEWER)

    assert first.updated == [str(review.id)]
    key = session.get(VirtualApiKey, late.id)
    assert key.revoked and key.revoked_by_revocation_id == review.revocation_id
    finding = next(fi for fi in review.findings if fi.subject_id == late.id)
    assert finding.kind == "user_key" and finding.action == "revoked"
    invalidations = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "gateway.invalidate_keys")
    ).all()
    assert {"key_ids": [str(late.id)], "reason": "review"} in invalidations

    before = _state(session)
    second = sweep_reviews(session, actor=REVIEWER)
    assert second.changes == 0
    assert _state(session) == before


def test_a_lost_review_task_is_made_good_by_the_sweep(session):
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.flush()

    result = sweep_reviews(session, actor=REVIEWER)

    review = reviews.review_of(session, revocation.id)
    assert review is not None and result.opened == [str(review.id)]
    assert sweep_reviews(session, actor=REVIEWER).changes == 0


def test_the_reaper_finds_a_lost_review_after_its_grace_and_opens_it_once(session):
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.commit()
    grace, day = timedelta(seconds=5), timedelta(days=1)
    later = utcnow() + timedelta(seconds=10)

    assert revocations_missing_review(session, older_than=grace, within=day) == []  # too new
    assert revocations_missing_review(session, older_than=grace, within=day, now=later) == [
        revocation.id
    ]
    review = open_missing_review(session, revocation_id=revocation.id, actor=REVIEWER)
    session.commit()

    assert review is not None and reviews.review_of(session, revocation.id) == review
    assert revocations_missing_review(session, older_than=grace, within=day, now=later) == []


def test_a_late_opening_gives_up_on_a_held_lock_within_its_bound_and_opens_once_free(
    session, sessions
):
    """The cut-off reaper opens late reviews on a worker slot it shares with cut-offs: a lock
    on the reviews held elsewhere ends its attempt after LATE_OPEN_LOCK_WAIT, never holds the
    slot for as long as the lock lasts."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("lock_timeout and LOCK TABLE are PostgreSQL's")
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.commit()

    with sessions() as holder:
        holder.execute(text("LOCK TABLE revocation_reviews IN EXCLUSIVE MODE"))
        with sessions() as reaper:
            # The session's own bound, a hang guard should the opening set none (undone by
            # the rollback below): what ends the wait must be the opening's SET LOCAL.
            reaper.execute(text("SET lock_timeout = '60s'"))
            with (
                statements_sent(reaper.get_bind()) as sent,
                pytest.raises(OperationalError) as refused,
            ):
                open_missing_review(reaper, revocation_id=revocation.id, actor=REVIEWER)
            reaper.rollback()
        short = holder.scalar(
            text("SELECT CAST(:wait AS interval) < interval '10 seconds'"),
            {"wait": LATE_OPEN_LOCK_WAIT},
        )
        holder.rollback()

    # Given up while the lock was still held (55P03: a lock timeout), under the opening's own
    # short bound, set before it waited (not a wall-clock bound: a loaded machine may take
    # any time to get there).
    assert is_transient(refused.value)
    assert getattr(refused.value.orig, "sqlstate", None) == "55P03"
    assert sent.index(f"SET LOCAL lock_timeout = '{LATE_OPEN_LOCK_WAIT}'") < len(sent) - 1
    assert short
    assert reviews.review_of(session, revocation.id) is None
    with sessions() as reaper:
        review = open_missing_review(reaper, revocation_id=revocation.id, actor=REVIEWER)
        reaper.commit()
    assert review is not None


def test_a_team_left_without_a_manager_is_added_to_the_review(session):
    org = f.make_org(session)
    person = f.make_user(session, org)
    co_manager = f.make_user(session, org, role=Role.MANAGER)
    team = f.make_team(session, org)
    f.add_member(session, team, person, TeamRole.MANAGER)
    f.add_member(session, team, co_manager, TeamRole.MANAGER)
    review = revoke_and_review(session, person)
    assert "last_manager" not in findings_by_kind(review)

    teams.remove_from_team(session, team=team, user=co_manager, actor=f.SETUP)
    result = sweep_reviews(session, actor=REVIEWER)

    assert result.updated == [str(review.id)]
    (finding,) = findings_by_kind(review)["last_manager"]
    assert finding.subject_id == team.id and finding.state is FindingState.OPEN
    assert sweep_reviews(session, actor=REVIEWER).changes == 0


def test_usage_reported_later_raises_an_urgent_finding_and_new_usage_reopens_it(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    f.make_usage(session, world.org, world.person, world.key_a)
    session.flush()

    assert sweep_reviews(session, actor=REVIEWER).updated == [str(review.id)]
    (urgent,) = findings_by_kind(review)["usage_after_revocation"]
    assert urgent.severity is Severity.URGENT and urgent.action == "investigate"
    assert sweep_reviews(session, actor=REVIEWER).changes == 0

    reviews.resolve_finding(session, finding=urgent, actor=REVIEWER, note="cache lag")
    f.make_usage(session, world.org, world.person, world.key_a)
    session.flush()
    assert sweep_reviews(session, actor=REVIEWER).updated == [str(review.id)]
    assert urgent.state is FindingState.OPEN and urgent.detail["requests"] == 2
    urgent_events = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "notifications.dispatch")
    ).all()
    assert [e["event"] for e in urgent_events].count("finding.urgent") == 2


def test_usage_ids_are_asked_about_within_one_organisation(session):
    """Record ids are unique only within an organisation: another organisation's record
    with the same id, naming this organisation's leaver (ingest refuses that, a record made
    here shows it), is not this organisation's usage after the revocation."""
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    other_org = f.make_org(session)
    f.make_usage(session, world.org, world.manager_a).external_id = "u-1"
    f.make_usage(session, other_org, world.person, world.key_a).external_id = "u-1"
    f.make_usage(session, world.org, world.person, world.key_a).external_id = "u-2"
    session.flush()

    assert unrecorded_usage(session, world.org.id, ["u-1"]) == set()
    assert unrecorded_usage(session, world.org.id, ["u-2"]) == {review.revocation_id}


def test_a_reactivated_person_s_open_review_is_closed(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    lifecycle.reactivate(session, user=world.person, actor=f.SETUP)

    result = sweep_reviews(session, actor=REVIEWER)

    assert result.closed == [str(review.id)]
    assert review.status is ReviewStatus.RESOLVED
    assert all(fi.state is not FindingState.OPEN for fi in review.findings)
    assert sweep_reviews(session, actor=REVIEWER).changes == 0


def test_the_review_task_skips_a_revocation_undone_before_it_ran(session):
    world = build_leaver(session)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    lifecycle.reactivate(session, user=world.person, actor=f.SETUP)
    session.flush()

    assert (
        reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER) is None
    )
    assert session.scalar(select(func.count(RevocationReview.id))) == 0
