"""The beat job that checks every organisation's sources and opens or clears incidents."""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models.base import utcnow
from models.entities import Organisation
from models.source_health import check_sources
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)


@task("health.check_sources")
def check_all_sources() -> int:
    rt, changed = runtime(), 0
    with rt.sessions() as session:
        organisation_ids = list(session.scalars(select(Organisation.id)))
        session.rollback()
    for organisation_id in organisation_ids:
        with rt.sessions() as session:
            try:
                changes = check_sources(session, organisation_id=organisation_id, now=utcnow())
                session.commit()
            except IntegrityError:
                # Another check opened the same incident first: it is open, once.
                session.rollback()
                continue
        for change in changes:
            log.info("health.source_changed", organisation_id=str(organisation_id), change=change)
        changed += len(changes)
    return changed
