"""Revocation review tasks: open one per revocation, sweep for drift, escalate on schedule."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from models.actions import leaver_checks, reviews
from models.actions.review_sweep import sweep_reviews
from models.actor import Actor
from models.errors import NotFound
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)


# No Celery retries: a review that did not open is opened by the cut-off reaper.
@task("reviews.open_for_revocation", autoretry_for=())
def open_for_revocation(revocation_id: str) -> str | None:
    with runtime().sessions() as session:
        try:
            review = reviews.open_revocation_review(
                session, revocation_id=uuid.UUID(revocation_id), actor=Actor.system("reviews")
            )
        except NotFound:
            log.warning("reviews.revocation_gone", revocation_id=revocation_id)
            return None
        session.commit()
        return str(review.id) if review else None


@task("reviews.sweep")
def sweep() -> dict[str, list[str]]:
    with runtime().sessions() as session:
        result = sweep_reviews(session, actor=Actor.schedule("reviews.sweep"))
        session.commit()
    log.info("reviews.swept", **{k: len(v) for k, v in result.as_dict().items()})
    return result.as_dict()


@task("reviews.escalate")
def escalate() -> int:
    with runtime().sessions() as session:
        count = reviews.escalate_due(session, actor=Actor.schedule("reviews.escalate"))
        session.commit()
    return count


@task(leaver_checks.TASK_CHECK)
def check_leavers(
    organisation_id: str, actor: dict[str, Any], key_ids: list[str] | None, usage_ids: list[str]
) -> list[str]:
    """The backstop of a writer's check after a write from Odock (models.actions.leaver_checks):
    sent if the writer died before its check, and after each chunk of keys a load wrote."""
    with runtime().sessions() as session:
        changed = leaver_checks.check(
            session,
            organisation_id=organisation_id,
            actor=actor,
            key_ids=key_ids,
            usage_ids=usage_ids,
        )
        session.commit()
    return changed
