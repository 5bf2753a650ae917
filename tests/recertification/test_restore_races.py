"""An admin's restore of a key the campaign revoked, made while another decision on the same
finding is under way (models.actions.recertification.restore): as if one came after the other.
The other decision holds its locks in a transaction of its own; the restore, given the finding
as read before, waits for it and then decides on what it wrote.

Before, the restore read the finding unlocked: a restore waiting behind the owner's revoke was
refused (it saw the finding unanswered), and one waiting behind the gateway's acknowledgement
wrote over it (the resolution said "restored by an admin", a second `review.finding_resolved`
claimed the finding was open). On SQLite the writers take turns (BEGIN IMMEDIATE): the same
tests show the serial outcome there."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from models.actions import recertification, reviews
from models.actor import Actor
from models.db import SessionFactory
from models.entities import AuditEvent, RecertificationCampaign, ReviewFinding, VirtualApiKey
from models.enums import FindingState, RecertDecision, Source
from models.errors import InvalidTransition
from tests.recertification.conftest import Keys
from tests.support import factories as f
from tests.support.parallel import while_held

ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")
RESTORED = "restored"


@pytest.fixture
def campaign(session: Session, keys: Keys) -> RecertificationCampaign:
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    session.commit()
    return opened.campaign


def finding_id_of(
    session: Session, campaign: RecertificationCampaign, key_id: uuid.UUID
) -> uuid.UUID:
    found = session.scalar(
        select(ReviewFinding.id).where(
            ReviewFinding.review_id == campaign.review_id, ReviewFinding.subject_id == key_id
        )
    )
    assert found is not None
    return found


def revoked_by_owner(finding_id: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        finding = own.get_one(ReviewFinding, finding_id)
        recertification.decide(
            own, finding=finding, decision=RecertDecision.REVOKE, reason="", actor=f.SETUP
        )
        own.flush()

    return hold


def restored_by_admin(finding_id: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        finding = own.get_one(ReviewFinding, finding_id)
        recertification.restore(own, finding=finding, actor=f.SETUP, reason="first")
        own.flush()

    return hold


def acknowledged_by_gateway(key_id: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        reviews.record_invalidation(own, key_ids=[key_id], reason="test")
        own.flush()

    return hold


def restore(sessions: SessionFactory, finding_id: uuid.UUID) -> Callable[[], str]:
    """The restore as the API makes it: the finding read first, then the decision."""

    def call() -> str:
        with sessions() as own:
            finding = own.get_one(ReviewFinding, finding_id)
            try:
                recertification.restore(own, finding=finding, actor=ADMIN, reason="needed")
            except InvalidTransition as refused:
                own.rollback()
                return str(refused)
            own.commit()
            return RESTORED

    return call


def revoke_now(session: Session, finding_id: uuid.UUID) -> None:
    revoked_by_owner(finding_id)(session)
    session.commit()


def events(sessions: SessionFactory, action: str, target: uuid.UUID) -> int:
    with sessions() as fresh:
        return fresh.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.target_id == str(target))
        )


def test_a_restore_made_while_the_owner_revokes_waits_and_restores(
    engine: Engine, sessions: SessionFactory, session: Session, keys: Keys, campaign
) -> None:
    key_id = keys.spend.id
    finding_id = finding_id_of(session, campaign, key_id)
    session.commit()  # SQLite: let the others take the write lock (keeping `keys` loaded)
    (answer,) = while_held(engine, revoked_by_owner(finding_id), [restore(sessions, finding_id)])
    assert answer == RESTORED
    with sessions() as fresh:
        assert not fresh.get_one(VirtualApiKey, key_id).revoked
        finding = fresh.get_one(ReviewFinding, finding_id)
        assert (finding.action, finding.action_taken) == ("restored", False)
        assert finding.state is FindingState.RESOLVED
    assert events(sessions, "recertification.restored", key_id) == 1


def test_two_restores_at_once_restore_once(
    engine: Engine, sessions: SessionFactory, session: Session, keys: Keys, campaign
) -> None:
    finding_id = finding_id_of(session, campaign, keys.spend.id)
    revoke_now(session, finding_id)
    (answer,) = while_held(engine, restored_by_admin(finding_id), [restore(sessions, finding_id)])
    assert answer == "only a key this campaign revoked can be restored"
    assert events(sessions, "recertification.restored", keys.spend.id) == 1
    assert events(sessions, "api_key.restored", keys.spend.id) == 1
    with sessions() as fresh:
        finding = fresh.get_one(ReviewFinding, finding_id)
        assert finding.detail["restore_reason"] == "first"


def test_a_restore_made_while_the_gateway_acknowledges_keeps_its_resolution(
    engine: Engine, sessions: SessionFactory, session: Session, keys: Keys, campaign
) -> None:
    finding_id = finding_id_of(session, campaign, keys.spend.id)
    revoke_now(session, finding_id)
    (answer,) = while_held(
        engine, acknowledged_by_gateway(keys.spend.id), [restore(sessions, finding_id)]
    )
    assert answer == RESTORED
    with sessions() as fresh:
        assert not fresh.get_one(VirtualApiKey, keys.spend.id).revoked
        finding = fresh.get_one(ReviewFinding, finding_id)
        assert (finding.action, finding.state) == ("restored", FindingState.RESOLVED)
        assert finding.resolution == "revoked by policy; the gateway acknowledged"
        assert finding.invalidation_status is None
    assert events(sessions, "review.finding_resolved", finding_id) == 0
