"""A departure called off while an admin answers one of its review's findings
(models.actions.reviews.supersede_departure_review): as if one came after the other. The
admin's answer holds the review; the change of date waits for it, then dismisses only what is
still open and closes the review once.

Before, the review and its findings were read unlocked: the finding the admin had just
resolved was dismissed too (the UPDATE waited for the admin's and overwrote it), and a review
the answer had closed was closed again."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import access_end, reviews
from models.db import make_session_factory
from models.entities import AuditEvent, ReviewFinding, RevocationReview, User
from models.enums import FindingState, ReviewStatus
from tests.access_end.test_departure_review import ADMIN, _noticed_leaver, _open
from tests.support.parallel import while_held


def test_a_departure_called_off_while_an_admin_answers_its_review_keeps_the_answer(
    session, engine
) -> None:
    leaver, review = _noticed_leaver(session)
    session.commit()
    answered, *others = (f.id for f in _open(review))

    def admin_resolves(own: Session) -> None:
        finding = own.get_one(ReviewFinding, answered)
        reviews.resolve_finding(own, finding=finding, actor=ADMIN, note="handed over")
        own.flush()

    def date_cleared() -> None:
        with make_session_factory(engine)() as own:
            user = own.get_one(User, leaver.id)
            access_end.set_access_end(own, user=user, ends_at=None, actor=ADMIN)
            own.commit()

    while_held(engine, admin_resolves, [date_cleared])

    session.expire_all()
    assert session.get_one(ReviewFinding, answered).state is FindingState.RESOLVED
    assert {session.get_one(ReviewFinding, i).state for i in others} <= {FindingState.DISMISSED}
    assert session.get_one(RevocationReview, review.id).status is ReviewStatus.RESOLVED
    trail = Counter(
        session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_id.in_([str(review.id), str(answered)])
            )
        )
    )
    assert trail["review.finding_resolved"] == 1 and trail["review.resolved"] == 1, trail
