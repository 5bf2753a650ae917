"""Opening a campaign by hand: it does not keep the schedule's campaign from asking about its
keys, and two admins opening one at once make one campaign."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.actions import recertification
from models.base import utcnow
from models.entities import AuditEvent, RecertificationCampaign, ReviewFinding, RevocationReview
from models.enums import FindingState, RecertDecision, ReviewStatus
from models.errors import InvalidTransition
from tests.recertification.conftest import configure
from tests.support import factories as f


def _findings(session, campaign) -> dict:
    rows = session.scalars(
        select(ReviewFinding).where(ReviewFinding.review_id == campaign.review_id)
    ).all()
    return {row.subject_id: row for row in rows}


def test_the_scheduled_campaign_opens_with_its_keys_while_one_opened_by_hand_runs(session, keys):
    now = utcnow()
    configure(session, keys.org, enabled=True, every_days=90, anchor_at=now - timedelta(days=95))
    manual = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    by_hand = _findings(session, manual.campaign)
    recertification.decide(
        session,
        finding=by_hand[keys.spend.id],
        decision=RecertDecision.KEEP,
        reason="billing",
        actor=f.SETUP,
    )
    session.commit()

    (scheduled,) = recertification.open_due(session, actor=f.SETUP, now=now + timedelta(hours=1))
    session.commit()
    assert scheduled.campaign.slot == "schedule:1"
    assert set(_findings(session, scheduled.campaign)) == keys.in_scope()
    assert scheduled.campaign.report["in_scope"]["keys"] == 4
    assert scheduled.campaign.report["in_scope"]["carried"] == 3  # the moved key among them

    session.expire_all()
    by_hand = _findings(session, manual.campaign)
    assert by_hand[keys.spend.id].action == "kept"
    superseded = [f for f in by_hand.values() if f.action == "superseded"]
    assert len(superseded) == 3 and all(f.state is FindingState.RESOLVED for f in superseded)
    assert session.get_one(RevocationReview, manual.campaign.review_id).status is (
        ReviewStatus.RESOLVED
    )
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "recertification.superseded")
    ).one()
    assert event.target_id == str(manual.campaign.id)
    assert event.after == {
        "by_campaign_id": str(scheduled.campaign.id),
        "by_slot": "schedule:1",
        "findings": 3,
    }
    with pytest.raises(InvalidTransition):  # the question moved to the scheduled campaign
        recertification.decide(
            session,
            finding=by_hand[keys.unused.id],
            decision=RecertDecision.KEEP,
            reason="late",
            actor=f.SETUP,
        )


def test_opening_by_hand_again_returns_the_running_campaign(session, keys):
    first = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    again = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    assert first.created and not again.created
    assert again.campaign.id == first.campaign.id

    recertification.enforce_due(session, now=first.campaign.deadline_at)  # past its deadline
    later = recertification.open_campaign(
        session, organisation_id=keys.org.id, actor=f.SETUP, now=first.campaign.deadline_at
    )
    assert later.created and later.campaign.id != first.campaign.id


@pytest.mark.usefixtures("keys")
def test_two_admins_opening_by_hand_at_once_make_one_campaign(sessions, keys):
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def open_by_hand() -> None:
        try:
            with sessions() as own:
                barrier.wait()
                recertification.open_campaign(own, organisation_id=keys.org.id, actor=f.SETUP)
                own.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_by_hand) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as check:
        assert check.scalar(select(func.count()).select_from(RecertificationCampaign)) == 1
        assert check.scalar(select(func.count()).select_from(ReviewFinding)) == 4


def test_the_api_answers_200_with_the_running_campaign(client, session, keys):
    token = f.admin_token(session, keys.org, keys.admin)
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    first = client.post("/api/v1/recertification/campaigns", headers=headers)
    again = client.post("/api/v1/recertification/campaigns", headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
