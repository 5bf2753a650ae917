"""Key recertification tasks: open the campaigns the schedules say are due, apply deadlines."""

from __future__ import annotations

import structlog

from models.actions import recertification
from models.actor import Actor
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)


@task("recertification.open_due")
def open_due() -> list[str]:
    """Idempotent per schedule slot: a second beat or worker finds the slot's campaign."""
    with runtime().sessions() as session:
        opened = recertification.open_due(session, actor=Actor.schedule("recertification"))
        session.commit()
    ids = [str(o.campaign.id) for o in opened]
    if ids:
        log.info("recertification.opened", campaigns=ids)
    return ids


@task("recertification.enforce_due")
def enforce_due() -> list[str]:
    with runtime().sessions() as session:
        enforced = recertification.enforce_due(session)
        session.commit()
    return [str(campaign_id) for campaign_id in enforced]
