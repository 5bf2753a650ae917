"""The gateway's answers whatever the order of events: a proof that arrives before the review
exists, a key still accepted with no review to hold the finding (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from models.actions import key_proofs, key_revocation, lifecycle, reviews, store_commands
from models.entities import (
    OutboxMessage,
    ReviewFinding,
    RevocationReview,
    StoreCommand,
    VirtualApiKey,
)
from models.enums import BUDGET_COMMANDS, FindingState, ReviewCause, Severity
from models.key_changes import STORE_KEY_UNKNOWN
from tests.reviews.conftest import REVIEWER, build_leaver, findings_by_kind
from tests.support import factories as f

SECRET = "proof-test-secret"


def _revoked_commands(session, world):
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.flush()
    commands = session.scalars(
        select(StoreCommand)
        .where(StoreCommand.command_type.not_in(BUDGET_COMMANDS))
        .order_by(StoreCommand.subject_id)
    ).all()
    store_commands.record_acknowledgements(
        session,
        acknowledged={c.id: datetime.now(UTC) for c in commands},
        reinvalidate_after=60,
    )
    return revocation, commands


def _answer(session, commands, *, accepted):
    return key_proofs.record_key_status(
        session,
        command_ids=[c.id for c in commands],
        answers={c.subject_id: (accepted, datetime.now(UTC)) for c in commands},
        secret=SECRET,
    )


def _urgent_alerts(session):
    return [
        m.kwargs
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "notifications.dispatch")
        )
        if m.kwargs["event"] == "finding.urgent"
    ]


def test_a_proof_that_arrives_before_the_review_is_applied_when_the_finding_is_made(
    bridged_session,
):
    world = build_leaver(bridged_session)
    revocation, commands = _revoked_commands(bridged_session, world)
    assert reviews.review_of(bridged_session, revocation.id) is None

    _answer(bridged_session, commands, accepted=False)
    review = reviews.open_revocation_review(
        bridged_session, revocation_id=revocation.id, actor=REVIEWER
    )

    for finding in findings_by_kind(review)["user_key"]:
        assert finding.gateway_proof is not None
        assert finding.gateway_proof["accepted"] is False
        assert key_proofs.proof_is_authentic(SECRET, finding.gateway_proof)


def test_a_store_404_that_arrives_before_the_review_is_on_the_finding(bridged_session):
    world = build_leaver(bridged_session)
    revocation = lifecycle.revoke(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.flush()
    command = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.subject_id == world.key_a.id)
    ).one()

    store_commands.record_unknown_keys(bridged_session, command_ids=[command.id])
    review = reviews.open_revocation_review(
        bridged_session, revocation_id=revocation.id, actor=REVIEWER
    )

    finding = next(fi for fi in review.findings if fi.subject_id == world.key_a.id)
    assert finding.detail["store"] == STORE_KEY_UNKNOWN
    assert store_commands.unsettled_by_key(bridged_session, key_ids=[world.key_a.id]) == {}


def test_a_key_still_accepted_before_its_review_exists_opens_the_review_with_it(
    bridged_session,
):
    world = build_leaver(bridged_session)
    revocation, commands = _revoked_commands(bridged_session, world)

    still = _answer(bridged_session, commands, accepted=True)

    assert sorted(still) == sorted(c.subject_id for c in commands)
    review = reviews.review_of(bridged_session, revocation.id)
    assert review is not None
    urgent = findings_by_kind(review)["key_still_accepted"]
    assert {fi.subject_id for fi in urgent} == set(still)
    assert all(fi.severity is Severity.URGENT and fi.state is FindingState.OPEN for fi in urgent)
    assert _urgent_alerts(bridged_session)


def test_a_key_still_accepted_with_no_review_at_all_gets_a_review_of_its_own(bridged_session):
    world = build_leaver(bridged_session)
    key_revocation.revoke_keys(
        bridged_session,
        organisation_id=world.org.id,
        scope=VirtualApiKey.id == world.other_key.id,
        actor=f.SETUP,
        reason="compromised",
    )
    bridged_session.flush()
    command = bridged_session.scalars(select(StoreCommand)).one()
    store_commands.record_acknowledgements(
        bridged_session, acknowledged={command.id: datetime.now(UTC)}, reinvalidate_after=60
    )

    still = _answer(bridged_session, [command], accepted=True)

    assert still == [world.other_key.id]
    review = bridged_session.scalars(
        select(RevocationReview).where(RevocationReview.cause == ReviewCause.KEY_STILL_ACCEPTED)
    ).one()
    (finding,) = bridged_session.scalars(
        select(ReviewFinding).where(ReviewFinding.review_id == review.id)
    ).all()
    assert finding.kind == "key_still_accepted" and finding.subject_id == world.other_key.id
    assert finding.severity is Severity.URGENT and finding.state is FindingState.OPEN
    assert finding.detail["proof"]["accepted"] is True
    [alert] = _urgent_alerts(bridged_session)
    assert alert["payload"]["findings"][0]["kind"] == "key_still_accepted"
