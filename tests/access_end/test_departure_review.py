"""One departure, one set of findings: the departure review closes (audited, its open findings
dismissed) when the date is cleared or moved beyond the notice, or when the person's
revocation, by any path, opens its own review with the same findings; a date moved within the
notice keeps the review, and the notice for the new date points at it."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import access_end, departure_notices, lifecycle, reviews
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    Organisation,
    ReviewFinding,
    RevocationReview,
    Team,
    User,
    VirtualApiKey,
)
from models.enums import FindingState, KeyType, ReviewCause, ReviewStatus, Source, TeamRole
from tests.access_end.conftest import audited
from tests.support import factories as f

ADMIN = Actor(Source.ADMIN, "admin@example.com")
BEAT = Actor.schedule(access_end.JOB)


def _noticed_leaver(session: Session) -> tuple[User, RevocationReview]:
    """A person leaving in three days (notice: seven) whose notice went out: their departure
    review lists the team key they created and their budget."""
    org = f.make_org(session)
    leaver = f.make_user(session, org)
    manager = f.make_user(session, org)
    team = f.make_team(session, org, "Platform")
    f.add_member(session, team, leaver)
    f.add_member(session, team, manager, TeamRole.MANAGER)
    f.make_key(session, org, team=team, created_by=leaver)
    f.make_budget(session, org, leaver)
    ends = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    access_end.set_access_end(session, user=leaver, ends_at=ends, actor=ADMIN)
    assert departure_notices.send_notice(session, user_id=leaver.id, now=utcnow(), actor=BEAT)
    review = _departure_reviews(session, leaver.id)[0]
    assert review.status is ReviewStatus.OPEN and len(_open(review)) == 2
    return leaver, review


def _departure_reviews(session: Session, user_id: uuid.UUID) -> list[RevocationReview]:
    session.flush()
    return list(
        session.scalars(
            select(RevocationReview).where(
                RevocationReview.user_id == user_id,
                RevocationReview.cause == ReviewCause.DEPARTURE,
            )
        )
    )


def _open(review: RevocationReview) -> list[ReviewFinding]:
    return [finding for finding in review.findings if finding.state is FindingState.OPEN]


def _assert_superseded(session: Session, review: RevocationReview, note: str) -> None:
    session.refresh(review)
    assert review.status is ReviewStatus.RESOLVED
    assert _open(review) == []
    assert {finding.resolution for finding in review.findings} == {note}
    assert audited(session, "review.superseded", review.id) == 1


def test_clearing_the_date_closes_the_departure_review(session) -> None:
    leaver, review = _noticed_leaver(session)

    access_end.set_access_end(session, user=leaver, ends_at=None, actor=ADMIN)

    _assert_superseded(session, review, "the end date was cleared")


def test_a_date_moved_beyond_the_notice_closes_it_and_one_within_keeps_it(session) -> None:
    leaver, review = _noticed_leaver(session)
    ends = leaver.access_ends_at
    assert ends is not None

    earlier = ends - timedelta(days=1)
    access_end.set_access_end(session, user=leaver, ends_at=earlier, actor=ADMIN)
    assert departure_notices.send_notice(session, user_id=leaver.id, now=utcnow(), actor=BEAT)
    (same,) = _departure_reviews(session, leaver.id)
    assert same.id == review.id and same.status is ReviewStatus.OPEN
    assert same.context["access_ends_at"] == earlier.isoformat()
    assert len(_open(same)) == 2

    later = ends + timedelta(days=30)
    access_end.set_access_end(session, user=leaver, ends_at=later, actor=ADMIN)
    _assert_superseded(session, review, f"the end date moved to {access_end._iso(later)}")


def test_a_revocation_by_another_path_takes_the_findings_over(session) -> None:
    leaver, review = _noticed_leaver(session)
    revocation = lifecycle.revoke(session, user=leaver, actor=ADMIN, reason="left early")

    took_over = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=BEAT)

    assert took_over is not None
    _assert_superseded(session, review, f"the revocation's review {took_over.id} took it over")
    open_subjects = Counter(
        finding.subject_id
        for finding in session.scalars(
            select(ReviewFinding).where(ReviewFinding.state == FindingState.OPEN)
        )
    )
    departure_subjects = {finding.subject_id for finding in review.findings}
    assert departure_subjects <= set(open_subjects)  # the revocation's review lists them
    assert all(open_subjects[subject] == 1 for subject in departure_subjects)


def test_a_moved_date_lists_what_the_person_took_on_since_the_first_notice(session) -> None:
    leaver, review = _noticed_leaver(session)
    ends = leaver.access_ends_at
    assert ends is not None
    org = session.get_one(Organisation, leaver.organisation_id)
    team = session.scalars(select(Team).where(Team.organisation_id == org.id)).one()
    first_key = session.scalars(
        select(VirtualApiKey).where(VirtualApiKey.created_by_user_id == leaver.id)
    ).one()
    new_team_key = f.make_key(session, org, team=team, created_by=leaver)
    new_org_key = f.make_key(session, org, created_by=leaver, key_type=KeyType.ORGANISATION)
    new_quota = f.make_quota(session, org, leaver)
    first_key.revoked = True  # revoked meanwhile: nothing left to hand over
    session.flush()

    earlier = ends - timedelta(days=1)
    access_end.set_access_end(session, user=leaver, ends_at=earlier, actor=ADMIN)
    assert departure_notices.send_notice(session, user_id=leaver.id, now=utcnow(), actor=BEAT)

    (same,) = _departure_reviews(session, leaver.id)
    assert same.id == review.id
    open_subjects = {finding.subject_id for finding in _open(same)}
    assert {new_team_key.id, new_org_key.id, new_quota.id} <= open_subjects
    assert first_key.id not in open_subjects
    (gone,) = [finding for finding in same.findings if finding.subject_id == first_key.id]
    assert gone.state is FindingState.RESOLVED
    assert gone.resolution == "no longer held by the person"
    assert audited(session, "review.updated", review.id) == 1


def test_moving_the_date_within_the_notice_refreshes_the_review_at_once(session) -> None:
    leaver, review = _noticed_leaver(session)
    ends = leaver.access_ends_at
    assert ends is not None
    org = session.get_one(Organisation, leaver.organisation_id)
    new_budget = f.make_budget(session, org, leaver, amount="50")
    session.flush()

    access_end.set_access_end(session, user=leaver, ends_at=ends - timedelta(days=1), actor=ADMIN)

    session.flush()
    assert new_budget.id in {finding.subject_id for finding in _open(review)}
    assert audited(session, "review.updated", review.id) == 1
    # the notice for the new date finds the review already in line: nothing more to record
    assert departure_notices.send_notice(session, user_id=leaver.id, now=utcnow(), actor=BEAT)
    assert audited(session, "review.updated", review.id) == 1
