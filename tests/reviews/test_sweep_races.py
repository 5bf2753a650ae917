"""The sweep closing the review of a person brought back, while an admin answers one of its
findings (models.actions.reviews.close_undone_review): as if one came after the other. The
admin's answer holds the review; the sweep waits for it, then dismisses only what is still
open and closes the review once.

Before, the sweep read the review and its findings unlocked: it dismissed the finding the
admin had just resolved (its UPDATE waited for the admin's, then overwrote it: the trail said
resolved, the finding said dismissed), and a review the admin's answer closed was closed,
and announced, a second time."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle, reviews
from models.actions.review_sweep import sweep_reviews
from models.actor import Actor
from models.db import make_session_factory
from models.entities import AuditEvent, ReviewFinding, RevocationReview
from models.enums import FindingState, ReviewStatus, Source
from tests.reviews.conftest import REVIEWER, build_leaver, revoke_and_review
from tests.support.parallel import while_held

ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


def test_the_sweep_closing_a_review_while_an_admin_answers_it_keeps_the_answer(
    session, engine
) -> None:
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    assert lifecycle.reactivate(session, user=world.person, actor=ADMIN) is not (
        lifecycle.Outcome.REFUSED
    )
    session.commit()
    answered = next(f for f in review.findings if f.state is FindingState.OPEN)
    others = [f.id for f in review.findings if f.state is FindingState.OPEN and f is not answered]

    def admin_resolves(own: Session) -> None:
        finding = own.get_one(ReviewFinding, answered.id)
        reviews.resolve_finding(own, finding=finding, actor=ADMIN, note="handed over")
        own.flush()

    def sweep() -> None:
        with make_session_factory(engine)() as own:
            sweep_reviews(own, actor=REVIEWER, organisation_id=world.org.id)
            own.commit()

    while_held(engine, admin_resolves, [sweep])

    session.expire_all()
    assert session.get_one(ReviewFinding, answered.id).state is FindingState.RESOLVED
    assert {session.get_one(ReviewFinding, i).state for i in others} <= {FindingState.DISMISSED}
    assert session.get_one(RevocationReview, review.id).status is ReviewStatus.RESOLVED
    trail = Counter(
        session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_id.in_([str(review.id), str(answered.id)])
            )
        )
    )
    assert trail["review.finding_resolved"] == 1 and trail["review.resolved"] == 1, trail
