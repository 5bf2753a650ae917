"""A campaign's findings are reminded and escalated by the reviews' own machinery: owner,
then the team's managers, then the admins; and two openers of one slot open it once."""

import threading

import pytest
from sqlalchemy import func, select

from models.actions import recertification, reviews
from models.entities import RecertificationCampaign
from models.notifications import TASK_DISPATCH
from tests.reviews.conftest import outbox_tasks
from tests.support import factories as f


def _notified(session, event: str) -> list[set[str]]:
    return [
        set(kwargs["recipient_user_ids"])
        for task, kwargs in outbox_tasks(session)
        if task == TASK_DISPATCH and kwargs["event"] == event
    ]


def test_owner_then_managers_then_admins(session, keys):
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    session.flush()
    (told,) = _notified(session, recertification.EVENT_OPENED)
    assert told == {str(keys.owner.id), str(keys.mover.id), str(keys.admin.id)}

    interval = reviews.escalation_interval(keys.org)
    due = opened.campaign.opened_at + interval
    for _ in (1, 2, 3):  # levels 1, 2, 3
        assert reviews.escalate_due(session, actor=f.SETUP, now=due) == 4
        due += interval
    owners, managers, admins = _notified(session, reviews.EVENT_ESCALATED)
    assert owners == {str(keys.owner.id), str(keys.mover.id)}
    assert managers == {str(keys.manager.id)}  # the moved key's team; the others have none
    assert admins == {str(keys.admin.id)}


@pytest.mark.usefixtures("keys")
def test_two_openers_of_one_slot_open_one_campaign(sessions, keys):
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def open_slot() -> None:
        try:
            with sessions() as own:
                barrier.wait()
                recertification.open_campaign(
                    own, organisation_id=keys.org.id, actor=f.SETUP, slot="schedule:7"
                )
                own.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_slot) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sessions() as check:
        assert check.scalar(select(func.count()).select_from(RecertificationCampaign)) == 1
