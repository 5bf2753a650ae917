"""Each store command names the revocation whose decision it carries (`revocation_id`): a
security admin asks "which revocation sent this command" of the data and of the audit trail.
Before, a command named only its key or budget; its revocation could be guessed for a key's
latest revoke (by time, while the key stayed revoked), never for a restore, a thaw, an older
revoke or a reassignment decided in a review."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import key_revocation, lifecycle, reviews, store_commands
from models.actions.key_rotations import request_key_rotation
from models.base import utcnow
from models.entities import AuditEvent, StoreCommand, VirtualApiKey
from models.enums import StoreCommandType
from tests.reviews.conftest import build_leaver, revoke_and_review
from tests.support import factories as f


def _commands(session: Session, subject_id: uuid.UUID) -> list[StoreCommand]:
    return list(
        session.scalars(
            select(StoreCommand)
            .where(StoreCommand.subject_id == subject_id)
            .order_by(StoreCommand.issued_at)
        )
    )


def _audited(session: Session, action: str, subject_id: uuid.UUID) -> list[dict]:
    return [
        event.after
        for event in session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.target_id == str(subject_id)
            )
        )
    ]


def test_a_revocations_commands_name_it_from_revoke_to_restore(bridged_session):
    world = build_leaver(bridged_session)
    world.org.settings.team_key_policy = world.org.settings.user_key_policy  # the review's
    budget = f.make_budget(bridged_session, world.org, world.person)
    bridged_session.flush()

    review = revoke_and_review(bridged_session, world.person)
    lifecycle.reactivate(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.flush()

    revocation_id = review.revocation_id
    for subject in (world.key_a.id, world.team_key.id):
        revoke, restore = _commands(bridged_session, subject)
        assert (revoke.command_type, restore.command_type) == (
            StoreCommandType.REVOKE,
            StoreCommandType.RESTORE,
        )
        assert (revoke.revocation_id, restore.revocation_id) == (revocation_id, revocation_id)
    freeze, thaw = _commands(bridged_session, budget.id)
    assert (freeze.revocation_id, thaw.revocation_id) == (revocation_id, revocation_id)
    (revoked,) = _audited(bridged_session, "api_key.revoked", world.key_a.id)
    assert revoked["revocation_id"] == str(revocation_id)


def test_the_stores_answers_are_audited_with_the_revocation(bridged_session):
    world = build_leaver(bridged_session)
    review = revoke_and_review(bridged_session, world.person)
    (revoke,) = _commands(bridged_session, world.key_a.id)

    store_commands.record_acknowledgements(
        bridged_session, acknowledged={revoke.id: utcnow()}, reinvalidate_after=0
    )

    (acknowledged,) = _audited(bridged_session, "api_key.command_acknowledged", world.key_a.id)
    assert acknowledged["command_id"] == str(revoke.id)
    assert acknowledged["revocation_id"] == str(review.revocation_id)


def test_a_reassignment_decided_in_the_review_names_its_revocation(bridged_session):
    world = build_leaver(bridged_session)
    review = revoke_and_review(bridged_session, world.person)
    finding = next(
        finding
        for finding in review.findings
        if finding.subject_id == world.team_key.id and reviews.answerable_by_hand(finding)
    )

    reviews.reassign_finding(
        bridged_session, finding=finding, to_user=world.manager_a, actor=f.SETUP
    )
    bridged_session.flush()

    (reassign,) = _commands(bridged_session, world.team_key.id)
    assert reassign.command_type is StoreCommandType.REASSIGN
    assert reassign.revocation_id == review.revocation_id


def test_a_command_no_revocation_made_names_none(bridged_session):
    """Guard: an admin's own decision about a key (a revoke, a rotation request) is no
    revocation's."""
    org = f.make_org(bridged_session)
    key = f.make_key(bridged_session, org, owner=f.make_user(bridged_session, org))
    bridged_session.flush()

    key_revocation.revoke_keys(
        bridged_session,
        organisation_id=org.id,
        scope=VirtualApiKey.id == key.id,
        actor=f.SETUP,
        reason="leaked",
    )
    request_key_rotation(
        bridged_session, organisation_id=org.id, key_id=key.id, actor=f.SETUP, reason="leaked"
    )
    bridged_session.flush()

    assert [c.revocation_id for c in _commands(bridged_session, key.id)] == [None, None]
