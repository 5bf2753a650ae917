"""The periodic reconcile with Odock's management plane (bridged mode; docs/odock.md), and
the purge of old tombstones.

Beat runs `odock.reconcile_due` every ODOCK_RECONCILE_INTERVAL seconds; it starts one
`odock.reconcile` per bridged organisation. A listing that fails is recorded as an incomplete
run (nothing deleted) and tried again with backoff (ODOCK_RECONCILE_RETRY_BASE, doubling, no
sooner than a Retry-After the listing was answered with, at most ODOCK_RECONCILE_RETRIES times
and never past the next interval).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog

from models.actions import odock_objects, odock_reconcile
from models.base import utcnow
from worker.runtime import runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)

TASK_RECONCILE_DUE = "odock.reconcile_due"
TASK_RECONCILE = "odock.reconcile"
TASK_PURGE_TOMBSTONES = "odock.purge_tombstones"


@task(TASK_RECONCILE_DUE)
def reconcile_due() -> int:
    settings = runtime().settings
    if not odock_reconcile.reconcile_configured(settings):
        return 0
    with runtime().sessions() as session:
        organisations = odock_reconcile.bridged_organisations(session)
    for organisation_id in organisations:
        reconcile_organisation.delay(str(organisation_id))
    return len(organisations)


@task(TASK_RECONCILE, bind=True, autoretry_for=())
def reconcile_organisation(self: Any, organisation_id: str) -> dict[str, Any]:
    current = runtime()
    run = odock_reconcile.reconcile_from_management_plane(
        current.engine, current.settings, uuid.UUID(organisation_id)
    )
    with current.sessions() as session:
        odock_reconcile.review_loaded_keys(session, run)
        session.commit()
    if odock_reconcile.credentials_refused(run):
        # The operator's to fix: an alarm, and the next interval's run, not a retry.
        log.error("odock.reconcile.credentials_refused", organisation_id=organisation_id)
    elif run.status != "succeeded":
        asked = odock_reconcile.asked_to_wait(run)
        wait = odock_reconcile.retry_in(current.settings, self.request.retries, asked=asked)
        if wait is not None:
            raise self.retry(countdown=wait, max_retries=None)
    return {"run_id": str(run.id), "status": run.status, "drift": run.summary.get("drift")}


@task(TASK_PURGE_TOMBSTONES)
def purge_tombstones() -> int:
    current = runtime()
    retention = timedelta(days=current.settings.odock_tombstone_retention_days)
    with current.sessions() as session:
        purged = odock_objects.purge_tombstones(session, older_than=utcnow() - retention)
        session.commit()
    return purged
