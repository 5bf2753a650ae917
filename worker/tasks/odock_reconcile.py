"""The periodic reconcile with Odock's management plane (bridged mode; docs/odock.md).

Beat runs `odock.reconcile_due` every ODOCK_RECONCILE_INTERVAL seconds; it starts one
`odock.reconcile` per bridged organisation. A listing that fails is recorded as an incomplete
run (nothing deleted) and tried again at the next interval, not retried at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from models.actions import odock_reconcile
from worker.runtime import runtime
from worker.tasks.base import task

TASK_RECONCILE_DUE = "odock.reconcile_due"
TASK_RECONCILE = "odock.reconcile"


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


@task(TASK_RECONCILE)
def reconcile_organisation(organisation_id: str) -> dict[str, Any]:
    current = runtime()
    run = odock_reconcile.reconcile_from_management_plane(
        current.engine, current.settings, uuid.UUID(organisation_id)
    )
    return {"run_id": str(run.id), "status": run.status, "drift": run.summary.get("drift")}
