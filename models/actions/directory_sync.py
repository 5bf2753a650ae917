"""Applying a directory sync plan through the shared user, identity and team operations.

Only users linked to this connector are ever changed; a person found by email whose account
another source manages is reported, not taken over. Creating people is set-based
(directory_import) because a first import can bring in a hundred thousand of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from connectors.ldap.reconcile import Plan, retired_teams
from models import audit
from models.actions import access_end, access_reviews
from models.actions import teams as team_actions
from models.actions.directory_import import BATCH, PeopleImport
from models.actions.directory_memberships import apply_membership_changes
from models.actions.identities import link_identity, mark_link_deleted
from models.actions.lifecycle import Outcome, set_active
from models.actions.users import edit_user
from models.actor import Actor
from models.base import utcnow
from models.entities import DirectoryConnector, DirectorySyncRun, IdentityLink, Organisation, User
from models.enums import Role, Source, SyncKind, SyncRunStatus, UserStatus
from models.errors import DomainError, InvalidTransition
from models.notifications import notify
from models.queries import directory as queries
from models.queries.directory import MANAGING_SOURCES
from models.sync_lock import live_leases


@dataclass
class Applied:
    created: int = 0
    updated: int = 0
    revoked: int = 0
    team_added: int = 0
    team_removed: int = 0
    demoted: int = 0
    reactivated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def ldap_actor(connector: DirectoryConnector) -> Actor:
    return Actor(Source.LDAP, f"ldap:{connector.name}")


def apply_directory_plan(
    session: Session,
    *,
    connector: DirectoryConnector,
    plan: Plan,
    actor: Actor,
    people: PeopleImport | None = None,
) -> Applied:
    """Carry out a plan; each item that no longer fits the data is reported and skipped.

    `people` is given when the plan's creates were already added while the directory was
    read (in this session's transaction); otherwise they are created here.
    """
    organisation = session.get_one(Organisation, connector.organisation_id)
    applied = Applied()
    if people is None and plan.creates:
        people = PeopleImport(session, organisation=organisation, connector=connector, actor=actor)
        for start in range(0, len(plan.creates), BATCH):
            people.add(plan.creates[start : start + BATCH])
    if people is not None:
        applied.created = people.finish(plan.creates)
        applied.errors.extend(people.errors)
    owned = _OwnedLinks(session, connector, plan)
    for item in plan.links:
        _guarded(applied, item, lambda item=item: _link(session, connector, item, actor, applied))
    for item in plan.relinks:
        _guarded(applied, item, lambda item=item: _relink(session, owned, item, actor, applied))
    for item in plan.updates:
        _guarded(applied, item, lambda item=item: _update(session, owned, item, actor, applied))
    for item in plan.reactivates:
        _guarded(applied, item, lambda item=item: _reactivate(session, owned, item, actor, applied))
    for item in plan.revokes:
        _guarded(applied, item, lambda item=item: _revoke(session, owned, item, actor, applied))
    for item in plan.roles:
        _guarded(applied, item, lambda item=item: _set_role(session, owned, item, actor, applied))
    # Retired first: a retired team's memberships go with it, not one by one.
    for item in plan.team_retires:
        _guarded(applied, item, lambda item=item: _retire(session, organisation, item, actor))
    # Set-based: a first import adds as many memberships as it creates people.
    memberships = apply_membership_changes(
        session,
        organisation=organisation,
        connector=connector,
        adds=plan.team_adds,
        removes=plan.team_removes,
        actor=actor,
        errors=applied.errors,
    )
    applied.team_added += memberships.added
    applied.team_removed += memberships.removed
    return applied


def plan_team_retirements(session: Session, *, connector: DirectoryConnector, plan: Plan) -> None:
    """Add to the plan the teams a sync made that no connector of the organisation maps."""
    organisation_id = connector.organisation_id
    plan.team_retires = retired_teams(
        queries.directory_teams(session, organisation_id),
        queries.mapped_team_names(session, organisation_id),
    )


def _retire(
    session: Session, organisation: Organisation, item: dict[str, Any], actor: Actor
) -> None:
    team = team_actions.find_team_by_name(session, organisation.id, item["team"])
    if team is None or team.external_source is not Source.LDAP:
        return  # deleted or taken over since the plan was made
    team_actions.delete_team(session, team=team, actor=actor)


def _guarded(applied: Applied, item: dict[str, Any], step: Any) -> None:
    try:
        step()
    except DomainError as exc:
        applied.errors.append({"external_id": item.get("external_id"), "message": exc.message})


class _OwnedLinks:
    """The links this connector owns that the plan names, loaded in a few queries."""

    def __init__(self, session: Session, connector: DirectoryConnector, plan: Plan) -> None:
        self.session = session
        self.connector = connector
        wanted = {item["previous_external_id"] for item in plan.relinks} | {
            item["external_id"]
            for items in (
                plan.updates,
                plan.reactivates,
                plan.revokes,
                plan.roles,
            )
            for item in items
        }
        self.links: dict[str, IdentityLink] = {}
        ordered = sorted(wanted)
        for start in range(0, len(ordered), BATCH):
            for link in session.scalars(
                self._query()
                .where(IdentityLink.external_id.in_(ordered[start : start + BATCH]))
                .options(joinedload(IdentityLink.user))
            ):
                self.links[link.external_id] = link

    def _query(self) -> Any:
        return select(IdentityLink).where(
            IdentityLink.organisation_id == self.connector.organisation_id,
            IdentityLink.source == Source.LDAP,
            IdentityLink.connector_id == self.connector.id,
        )

    def get(self, external_id: str) -> IdentityLink | None:
        """Only links of this connector (links of other sources are never touched)."""
        link = self.links.get(external_id)
        if link is None:
            link = self.session.scalar(self._query().where(IdentityLink.external_id == external_id))
            if link is not None:
                self.links[external_id] = link
        return link


def _link(
    session: Session,
    connector: DirectoryConnector,
    item: dict[str, Any],
    actor: Actor,
    applied: Applied,
) -> None:
    user = session.get(User, uuid.UUID(item["user_id"]))
    if user is None or user.organisation_id != connector.organisation_id:
        raise InvalidTransition("the user to link no longer exists")
    others = [
        link
        for link in user.identity_links
        if link.deleted_at is None and link.source in MANAGING_SOURCES
    ]
    if others:
        raise InvalidTransition(f"{user.email} is now managed by {others[0].source.value}")
    link_identity(
        session,
        user=user,
        source=Source.LDAP,
        external_id=item["external_id"],
        actor=actor,
        attributes={"dn": item["dn"]},
        connector_id=connector.id,
    )
    role = Role(item["role"]) if item.get("role") else None
    edit_user(session, user=user, actor=actor, name=item["name"], role=role)
    _set_end_date(session, user, item.get("access_ends_at"), actor)
    applied.updated += 1


def _relink(
    session: Session, owned: _OwnedLinks, item: dict[str, Any], actor: Actor, applied: Applied
) -> None:
    """A re-hire: the person's link moves to the new entry (audited, and reviewed as a change
    of identity); a sync's revocation of them is undone through the lifecycle policy."""
    link = owned.get(item["previous_external_id"])
    if link is None or owned.get(item["external_id"]) is not None:
        raise InvalidTransition(f"{item['email']}: the link to relink changed since the plan")
    previous = link.external_id
    before = {"external_id": previous, "dn": link.attributes.get("dn")}
    link.external_id = item["external_id"]
    attributes = {**link.attributes, "dn": item["dn"]}
    attributes.pop("access_ends_at", None)
    if item.get("access_ends_at"):
        attributes["access_ends_at"] = item["access_ends_at"]
    link.attributes = attributes
    link.deleted_at = None
    owned.links[item["external_id"]] = link
    _set_end_date(session, link.user, item.get("access_ends_at"), actor)
    audit.record(
        session,
        actor=actor,
        organisation_id=link.organisation_id,
        action="identity.relinked",
        target_type="user",
        target_id=link.user_id,
        before=before,
        after={"external_id": item["external_id"], "dn": item["dn"], "reason": "re-hire"},
    )
    user = link.user
    role = Role(item["role"]) if item.get("role") and user.role is not Role.SUPER_ADMIN else None
    edit_user(session, user=user, actor=actor, name=item["name"], email=item["email"], role=role)
    revoked = user.status is UserStatus.REVOKED
    if revoked and set_active(session, user=user, active=True, actor=actor) is Outcome.APPLIED:
        applied.reactivated += 1
    access_reviews.review_identity_change(
        session,
        user=user,
        previous_external_id=previous,
        external_id=item["external_id"],
        actor=actor,
    )
    applied.updated += 1


def _update(
    session: Session, owned: _OwnedLinks, item: dict[str, Any], actor: Actor, applied: Applied
) -> None:
    link = owned.get(item["external_id"])
    if link is None:
        return
    fields = item["fields"]
    if "name" in fields or "email" in fields:
        edit_user(
            session,
            user=link.user,
            actor=actor,
            name=fields["name"][1] if "name" in fields else None,
            email=fields["email"][1] if "email" in fields else None,
        )
    if "dn" in fields and link.attributes.get("dn") != item["dn"]:
        audit.record(
            session,
            actor=actor,
            organisation_id=link.organisation_id,
            action="identity.moved",
            target_type="user",
            target_id=link.user_id,
            before={"dn": link.attributes.get("dn")},
            after={"dn": item["dn"]},
        )
        link.attributes = {**link.attributes, "dn": item["dn"]}
    if "access_ends_at" in fields:
        _store_access_end(session, link, fields["access_ends_at"][1], actor)
    applied.updated += 1


def _store_access_end(session: Session, link: IdentityLink, ends: str, actor: Actor) -> None:
    """The date the directory says access ends: the person's end date (the schedule revokes
    them then), kept on the link as the directory gave it."""
    _set_end_date(session, link.user, ends, actor)
    before = link.attributes.get("access_ends_at") or ""
    if before == ends:
        return
    attributes = {**link.attributes, "access_ends_at": ends}
    if not ends:
        attributes.pop("access_ends_at")
    link.attributes = attributes
    audit.record(
        session,
        actor=actor,
        organisation_id=link.organisation_id,
        action="identity.access_end_changed",
        target_type="user",
        target_id=link.user_id,
        before={"access_ends_at": before or None},
        after={"access_ends_at": ends or None},
    )


def _set_end_date(session: Session, user: User, ends: str | None, actor: Actor) -> None:
    moment = datetime.fromisoformat(ends) if ends else None
    access_end.set_access_end(session, user=user, ends_at=moment, actor=actor)


def _reactivate(
    session: Session, owned: _OwnedLinks, item: dict[str, Any], actor: Actor, applied: Applied
) -> None:
    link = owned.get(item["external_id"])
    if link is None:
        return
    outcome = set_active(session, user=link.user, active=True, actor=actor)
    if outcome is Outcome.APPLIED:
        applied.reactivated += 1
    if outcome is not Outcome.REFUSED and link.deleted_at is not None:
        link.deleted_at = None


def _revoke(
    session: Session, owned: _OwnedLinks, item: dict[str, Any], actor: Actor, applied: Applied
) -> None:
    link = owned.get(item["external_id"])
    if link is None:
        return
    outcome = set_active(session, user=link.user, active=False, actor=actor, reason=item["reason"])
    if outcome is Outcome.APPLIED:
        applied.revoked += 1
    if item.get("removed"):
        mark_link_deleted(session, link=link, actor=actor)


def _set_role(
    session: Session, owned: _OwnedLinks, item: dict[str, Any], actor: Actor, applied: Applied
) -> None:
    link = owned.get(item["external_id"])
    if link is not None and link.user.role is not Role.SUPER_ADMIN:
        role = Role(item["role"])
        if role.rank < link.user.role.rank:
            applied.demoted += 1
        edit_user(session, user=link.user, actor=actor, role=role)


# --- runs -------------------------------------------------------------------------------


def start_run(
    session: Session,
    *,
    connector: DirectoryConnector,
    kind: SyncKind,
    dry_run: bool,
    trigger: str,
) -> DirectorySyncRun:
    run = DirectorySyncRun(
        organisation_id=connector.organisation_id,
        connector_id=connector.id,
        kind=kind,
        dry_run=dry_run,
        trigger=trigger,
    )
    session.add(run)
    session.flush()
    return run


def lease_name(connector_id: uuid.UUID) -> str:
    """The lease a sync of this connector holds while it runs (models.sync_lock)."""
    return f"directory-sync:{connector_id}"


INTERRUPTED = "sync_interrupted"


def reap_stale_runs(
    session: Session, *, now: datetime, held: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Fail the `running` runs whose sync is gone: its lease expired or was released.

    A run is `running` only while its sync holds the connector's lease, so a running run
    without a live lease was left by a process that died (kill -9, a lost host). With `held`,
    only that connector's runs are looked at, and the caller holds its lease: all are stale.
    """
    running = list(session.execute(queries.running_runs(held)))
    live: set[str] = set()
    if held is None:
        live = live_leases(session, [lease_name(row.connector_id) for row in running], now=now)
    reaped: list[uuid.UUID] = []
    for row in running:
        if lease_name(row.connector_id) in live:
            continue
        # Locked and read again: the sync may have finished since the first read.
        run = session.scalar(
            select(DirectorySyncRun)
            .where(DirectorySyncRun.id == row.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if run is None or run.status is not SyncRunStatus.RUNNING:
            continue
        connector = session.get_one(DirectoryConnector, run.connector_id)
        fail_run(
            session,
            run=run,
            code=INTERRUPTED,
            message="the sync stopped without finishing (its process died or lost its lease)",
            read=run.read_count,
            connector=connector,
        )
        reaped.append(run.id)
    return reaped


def _finish(run: DirectorySyncRun, status: SyncRunStatus) -> None:
    run.status = status
    run.finished_at = utcnow()
    run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)


def fail_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    code: str,
    message: str,
    read: int,
    connector: DirectoryConnector,
) -> None:
    """An aborted run: nobody was revoked; the organisation's admins are told why."""
    run.error_code = code
    run.error = message
    run.read_count = read
    run.error_count = max(run.error_count, 1)
    _finish(run, SyncRunStatus.FAILED)
    audit.record(
        session,
        actor=ldap_actor(connector),
        organisation_id=run.organisation_id,
        action="directory_sync.failed",
        target_type="directory",
        target_id=connector.id,
        after={"run_id": str(run.id), "error_code": code, "error": message},
    )
    notify(
        session,
        organisation_id=run.organisation_id,
        event="directory_sync.failed",
        payload={
            "connector": connector.name,
            "connector_id": str(connector.id),
            "run_id": str(run.id),
            "error_code": code,
            "error": message,
            "revoked": 0,
        },
    )


PLAN_ITEMS_KEPT = 1000


def record_plan(run: DirectorySyncRun, plan: Plan, *, applied: bool = False) -> None:
    """Store the plan: whole when it waits (dry run, quarantine), cut down once applied."""
    keep = PLAN_ITEMS_KEPT if applied else None
    run.plan = {**plan.to_dict(keep=keep), "summary": plan.summary()}
    run.read_count = plan.read
    run.unchanged_count = plan.unchanged
    run.error_count = len(plan.errors)


def quarantine_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    reason: str,
) -> None:
    record_plan(run, plan)
    run.error = reason
    _finish(run, SyncRunStatus.QUARANTINED)
    audit.record(
        session,
        actor=ldap_actor(connector),
        organisation_id=run.organisation_id,
        action="directory_sync.quarantined",
        target_type="directory",
        target_id=connector.id,
        after={"run_id": str(run.id), "reason": reason, "summary": plan.summary()},
    )
    notify(
        session,
        organisation_id=run.organisation_id,
        event="directory_sync.quarantined",
        payload={
            "connector": connector.name,
            "connector_id": str(connector.id),
            "run_id": str(run.id),
            "reason": reason,
            "summary": plan.summary(),
        },
    )


def complete_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    applied: Applied | None,
    status: SyncRunStatus,
) -> None:
    """Store the plan and counts; a full or incremental sync that applied moves the marks."""
    record_plan(run, plan, applied=applied is not None)
    if applied is not None:
        run.created_count = applied.created
        run.updated_count = applied.updated
        run.revoked_count = applied.revoked
        run.reactivated_count = applied.reactivated
        run.error_count = len(plan.errors) + len(applied.errors)
        if run.plan is not None:
            done = {
                "team_added": applied.team_added,
                "team_removed": applied.team_removed,
                "demoted": applied.demoted,
            }
            run.plan = {**run.plan, "applied": done}
            if applied.errors:
                run.plan["apply_errors"] = applied.errors
        if plan.watermark and run.kind in (SyncKind.FULL, SyncKind.INCREMENTAL):
            connector.watermark = plan.watermark
        now = utcnow()
        if run.kind is SyncKind.FULL:
            connector.last_full_sync_at = now
        connector.last_incremental_sync_at = now
    _finish(run, status)
    if plan.deprovision_blocked:
        run.error = f"deprovisioning withheld: {plan.deprovision_blocked}"
        if plan.withheld:
            also = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.withheld.items()))
            run.error += f" (also withheld: {also})"
        notify(
            session,
            organisation_id=run.organisation_id,
            event="directory_sync.deprovision_withheld",
            payload={
                "connector": connector.name,
                "connector_id": str(connector.id),
                "run_id": str(run.id),
                "reason": plan.deprovision_blocked,
                "withheld": dict(plan.withheld),
            },
        )


def get_run(
    session: Session, organisation_id: uuid.UUID, run_id: uuid.UUID, *, for_update: bool = False
) -> DirectorySyncRun:
    from models.errors import NotFound

    run = session.get(DirectorySyncRun, run_id, with_for_update=for_update)
    if run is None or run.organisation_id != organisation_id:
        raise NotFound("sync run not found")
    return run


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
            DirectorySyncRun.status.in_([SyncRunStatus.SUCCEEDED, SyncRunStatus.APPROVED]),
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
    run.plan = {key: value for key, value in (run.plan or {}).items() if key != "refused"}
    _decide(session, run, actor, "directory_sync.approval_requested")
    from models import outbox

    outbox.enqueue(session, TASK_APPLY_APPROVAL, run_id=str(run.id), actor=actor.to_json())


def refuse_approval(session: Session, *, run: DirectorySyncRun, code: str, message: str) -> None:
    """The approval could not be applied (an outdated plan, an unreadable directory, a lost
    lease): nothing of it was applied; the run waits again, with the reason on it."""
    run.status = SyncRunStatus.QUARANTINED
    run.plan = {**(run.plan or {}), "refused": {"error_code": code, "error": message}}
    connector = session.get_one(DirectoryConnector, run.connector_id)
    payload = {"run_id": str(run.id), "error_code": code, "error": message}
    audit.record(
        session,
        actor=ldap_actor(connector),
        organisation_id=run.organisation_id,
        action="directory_sync.approval_refused",
        target_type="directory",
        target_id=connector.id,
        before={"status": SyncRunStatus.APPROVING.value, "decided_by": run.decided_by},
        after={**payload, "status": run.status.value},
    )
    notify(
        session,
        organisation_id=run.organisation_id,
        event="directory_sync.approval_refused",
        payload={"connector": connector.name, "connector_id": str(connector.id), **payload},
    )


def approve_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    actor: Actor,
    plan: Plan | None = None,
    dropped: dict[str, list[dict[str, Any]]] | None = None,
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
            "dropped": {name: items[:PLAN_ITEMS_KEPT] for name, items in dropped.items()},
            "dropped_counts": dropped_counts,
        }
    _decide(session, run, actor, "directory_sync.approved", dropped=dropped_counts)
    return applied


def discard_run(session: Session, *, run: DirectorySyncRun, actor: Actor) -> None:
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


# --- schedule ---------------------------------------------------------------------------

TASK_SYNC = "directory.sync"


def enqueue_due_syncs(session: Session, *, now: Any) -> list[tuple[str, str]]:
    """Queue a full or incremental sync for each enabled connector whose interval has passed."""
    from datetime import timedelta

    from models import outbox

    queued: list[tuple[str, str]] = []
    for connector in session.scalars(
        select(DirectoryConnector).where(DirectoryConnector.enabled.is_(True))
    ):
        kind = ""
        full_every = timedelta(minutes=connector.full_sync_minutes)
        incremental_every = timedelta(minutes=connector.incremental_minutes)
        if connector.full_sync_minutes and (
            connector.full_scheduled_at is None or now - connector.full_scheduled_at >= full_every
        ):
            kind = SyncKind.FULL.value
            connector.full_scheduled_at = now
            connector.incremental_scheduled_at = now
        elif connector.incremental_minutes and (
            connector.incremental_scheduled_at is None
            or now - connector.incremental_scheduled_at >= incremental_every
        ):
            kind = SyncKind.INCREMENTAL.value
            connector.incremental_scheduled_at = now
        if kind:
            outbox.enqueue(
                session, TASK_SYNC, connector_id=str(connector.id), kind=kind, trigger="schedule"
            )
            queued.append((str(connector.id), kind))
    return queued


def request_sync(
    session: Session,
    *,
    connector: DirectoryConnector,
    kind: SyncKind,
    dry_run: bool,
    actor: Actor,
) -> None:
    """Queue a sync now (the worker runs it after this transaction commits)."""
    from models import outbox

    outbox.enqueue(
        session,
        TASK_SYNC,
        connector_id=str(connector.id),
        kind=kind.value,
        trigger=str(actor),
        dry_run=dry_run,
    )
    audit.record_change(
        session,
        actor=actor,
        subject=connector,
        action="directory_sync.requested",
        target_type="directory",
        after={"kind": kind.value, "dry_run": dry_run},
    )
