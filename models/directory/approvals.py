"""Approving or discarding a quarantined run: the admin's decision and what it applies.

An approval is recorded first (`approving`); worker.directory_approval re-reads the directory
and applies, through approve_run, what the held plan still calls for.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan, PlanItem
from models import audit, outbox
from models.actor import Actor
from models.base import utcnow
from models.directory.apply import Applied, apply_directory_plan
from models.directory.runs import (
    PLAN_ITEMS_KEPT,
    audit_run,
    complete_run,
    ldap_actor,
    lease_name,
    locked_without_lease,
    notify_about_run,
)
from models.entities import DirectoryConnector, DirectorySyncRun
from models.enums import APPLIED_RUN_STATUSES, SyncRunStatus
from models.errors import InvalidTransition
from models.queries import directory as queries
from models.sync_lock import live_leases

APPROVABLE = (SyncRunStatus.QUARANTINED, SyncRunStatus.APPROVING)


def check_approvable(
    session: Session, *, run: DirectorySyncRun, statuses: tuple[SyncRunStatus, ...] = APPROVABLE
) -> None:
    """Only a quarantined run (or one whose approval is being applied), and only while no
    later sync of its connector has completed (the later sync saw a newer directory: the held
    plan is outdated)."""
    if run.status not in statuses or run.plan is None:
        raise InvalidTransition(f"only a quarantined run can be approved; this one is {run.status}")
    newer = session.scalar(
        select(DirectorySyncRun)
        .where(
            DirectorySyncRun.connector_id == run.connector_id,
            DirectorySyncRun.id != run.id,
            DirectorySyncRun.started_at > run.started_at,
            DirectorySyncRun.dry_run.is_(False),
            DirectorySyncRun.status.in_(APPLIED_RUN_STATUSES),
        )
        .order_by(DirectorySyncRun.started_at.desc())
        .limit(1)
    )
    if newer is not None:
        raise InvalidTransition(
            f"a later sync of this connector ({newer.id}, {newer.status.value}) has completed "
            "since this plan was held; it is outdated: discard it",
            newer_run_id=str(newer.id),
        )


TASK_APPLY_APPROVAL = "directory.apply_approval"


def request_approval(session: Session, *, run: DirectorySyncRun, actor: Actor) -> None:
    """An admin approves a held plan: recorded now; a worker re-reads the directory and
    applies what still holds after this transaction commits."""
    check_approvable(session, run=run, statuses=(SyncRunStatus.QUARANTINED,))
    run.status = SyncRunStatus.APPROVING
    kept = {key: value for key, value in (run.plan or {}).items() if key not in _APPROVAL_NOTES}
    # who approved, for a re-drive of the approval (reap_stalled_approvals) to act in their name
    run.plan = {**kept, "approver": actor.to_json()}
    _decide(session, run, actor, "directory_sync.approval_requested")
    outbox.enqueue(session, TASK_APPLY_APPROVAL, run_id=str(run.id), actor=actor.to_json())


# notes an approval leaves on the plan, cleared when the run is approved again
_APPROVAL_NOTES = ("refused", "redriven", "approver")
APPROVAL_REDRIVES = 3
STALLED = "approval_interrupted"


def reap_stalled_approvals(
    session: Session, *, now: datetime, lease_seconds: float
) -> list[uuid.UUID]:
    """Approvals whose worker is gone: the run is `approving`, nobody holds its connector's
    lease, and it was last handed to a worker more than a lease ago.

    Nothing of such an approval was applied (applying takes one transaction, under the
    lease), so it is handed to a worker again, audited; after APPROVAL_REDRIVES re-drives
    the run returns to quarantined with the reason instead, for an admin to approve again.
    A re-drive of an approval still queued is harmless: the first to run applies it, under
    the lease, and the other finds the run no longer `approving`.
    """
    handled: list[uuid.UUID] = []
    rows = list(session.execute(queries.approving_runs()))
    live = live_leases(session, [lease_name(row.connector_id) for row in rows], now=now)
    for run in locked_without_lease(session, rows, live=live, status=SyncRunStatus.APPROVING):
        redriven = (run.plan or {}).get("redriven") or {}
        last = datetime.fromisoformat(redriven["at"]) if redriven else run.decided_at
        if last is not None and (now - last).total_seconds() < lease_seconds:
            continue  # handed to a worker recently: it may not have started yet
        count = int(redriven.get("count", 0))
        if count >= APPROVAL_REDRIVES:
            refuse_approval(
                session,
                run=run,
                code=STALLED,
                message=f"the approval was not carried out: its worker stopped {count + 1} "
                "times before applying it; approve the run again",
            )
        else:
            _redrive(session, run, count + 1, now)
        handled.append(run.id)
    return handled


def _redrive(session: Session, run: DirectorySyncRun, count: int, now: datetime) -> None:
    """Hand a stalled approval to a worker again, in the approver's name."""
    plan = run.plan or {}
    approver = plan.get("approver")
    actor = Actor.from_json(approver) if approver else Actor.system()
    run.plan = {**plan, "redriven": {"count": count, "at": now.isoformat()}}
    connector = session.get_one(DirectoryConnector, run.connector_id)
    audit_run(
        session,
        run,
        connector,
        "directory_sync.approval_redriven",
        after={
            "redrives": count,
            "decided_by": run.decided_by,
            "reason": "no worker holds the connector's lease and the approval is not applied",
        },
    )
    outbox.enqueue(session, TASK_APPLY_APPROVAL, run_id=str(run.id), actor=actor.to_json())


def refuse_approval(session: Session, *, run: DirectorySyncRun, code: str, message: str) -> None:
    """The approval could not be applied (an outdated plan, an unreadable directory, a lost
    lease): nothing of it was applied; the run waits again, with the reason on it."""
    run.status = SyncRunStatus.QUARANTINED
    run.plan = {**(run.plan or {}), "refused": {"error_code": code, "error": message}}
    connector = session.get_one(DirectoryConnector, run.connector_id)
    audit_run(
        session,
        run,
        connector,
        "directory_sync.approval_refused",
        before={"status": SyncRunStatus.APPROVING.value, "decided_by": run.decided_by},
        after={"error_code": code, "error": message, "status": run.status.value},
    )
    notify_about_run(
        session, run, connector, "directory_sync.approval_refused", error_code=code, error=message
    )


def approve_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    actor: Actor,
    plan: Plan | None = None,
    dropped: dict[str, list[PlanItem]] | None = None,
) -> Applied:
    """Apply a quarantined plan: `plan` is the held one re-checked against the directory
    (`dropped`: what no longer held, reported on the run and in the audit); a second approval
    is refused."""
    check_approvable(session, run=run)
    connector = session.get_one(DirectoryConnector, run.connector_id)
    assert run.plan is not None
    plan = plan if plan is not None else Plan.from_dict(run.plan)
    applied = apply_directory_plan(
        session, connector=connector, plan=plan, actor=ldap_actor(connector)
    )
    complete_run(
        session,
        run=run,
        connector=connector,
        plan=plan,
        applied=applied,
        status=SyncRunStatus.APPROVED,
    )
    dropped_counts = {name: len(items) for name, items in (dropped or {}).items()}
    if dropped and run.plan is not None:
        run.plan = {
            **run.plan,
            "dropped": {
                name: [item.to_dict() for item in items[:PLAN_ITEMS_KEPT]]
                for name, items in dropped.items()
            },
            "dropped_counts": dropped_counts,
        }
    _decide(session, run, actor, "directory_sync.approved", dropped=dropped_counts)
    return applied


def discard_run(session: Session, *, run: DirectorySyncRun, actor: Actor) -> None:
    """Drop a held plan. The run is locked and read again first, as an approval locks it: of
    an approval and discards at once, one decides and the others find it decided."""
    session.refresh(run, with_for_update=True)
    if run.status is not SyncRunStatus.QUARANTINED:
        raise InvalidTransition(
            f"only a quarantined run can be discarded; this one is {run.status}"
        )
    run.status = SyncRunStatus.DISCARDED
    _decide(session, run, actor, "directory_sync.discarded")


def _decide(
    session: Session,
    run: DirectorySyncRun,
    actor: Actor,
    action: str,
    *,
    dropped: dict[str, int] | None = None,
) -> None:
    run.decided_by = str(actor)
    run.decided_at = utcnow()
    audit.record(
        session,
        actor=actor,
        organisation_id=run.organisation_id,
        action=action,
        target_type="directory",
        target_id=run.connector_id,
        after={"run_id": str(run.id), **({"dropped": dropped} if dropped is not None else {})},
    )
