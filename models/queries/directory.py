"""Read models of directory sync: what a connector owns, its runs, and API views."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any

from sqlalchemy import Select, String, cast, func, select
from sqlalchemy.orm import Session

from connectors.email_address import email_key
from connectors.ldap.mapping import ISO_FORMAT
from connectors.ldap.reconcile import Known, MembershipState, Unlinked
from models.actions import lifecycle
from models.directory.safety import policy_of
from models.entities import (
    DirectoryConnector,
    DirectorySyncRun,
    IdentityLink,
    Team,
    TeamMembership,
    User,
)
from models.enums import APPLIED_RUN_STATUSES, Source, SyncRunStatus, UserStatus

CHUNK = 500
# Sources that manage a person's lifecycle; an invitation or a manual link does not.
MANAGING_SOURCES = (Source.SCIM, Source.LDAP, Source.OKTA, Source.EVENTS)


def load_known(
    session: Session,
    connector: DirectoryConnector,
    external_ids: list[str] | None = None,
    *,
    ended_by: str = "",
) -> dict[str, Known]:
    """The users this connector owns, by stable id (all of them, or just the ids given, or
    with `ended_by` those whose stored end of access is at or before it)."""
    # Plain text columns: no per-row UUID, enum or JSON decoding for 100,000 rows.
    query = (
        select(
            IdentityLink.external_id,
            cast(IdentityLink.user_id, String).label("user_id"),
            IdentityLink.attributes["dn"].as_string().label("dn"),
            IdentityLink.attributes["access_ends_at"].as_string().label("access_ends_at"),
            IdentityLink.deleted_at.is_not(None).label("deleted"),
            User.email,
            User.name,
            cast(User.status, String).label("status"),
            cast(User.role, String).label("role"),
        )
        .join(User, User.id == IdentityLink.user_id)
        .where(
            IdentityLink.organisation_id == connector.organisation_id,
            IdentityLink.source == Source.LDAP,
            IdentityLink.connector_id == connector.id,
        )
    )
    rows: Iterable[Any]
    if ended_by:
        ends = IdentityLink.attributes["access_ends_at"].as_string()
        rows = session.execute(
            query.where(
                ends.is_not(None), ends != "", ends <= ended_by, User.status != UserStatus.REVOKED
            )
        )
    elif external_ids is None:
        rows = fetch_plain(session, query)
    else:
        chunks = [
            external_ids[start : start + CHUNK] for start in range(0, len(external_ids), CHUNK)
        ]
        rows = (
            row
            for chunk in chunks
            for row in session.execute(query.where(IdentityLink.external_id.in_(chunk)))
        )
    intern = sys.intern
    known = {
        intern(ext): Known(
            user_id=user_id,
            email=email,
            name=name,
            status=intern(status),
            role=intern(role),
            dn=dn or "",
            access_ends_at=access_ends_at or "",
            deleted=bool(deleted),
        )
        for ext, user_id, dn, access_ends_at, deleted, email, name, status, role in rows
    }
    _mark_reactivatable(session, known)
    return known


def load_owned_by_email(
    session: Session, connector: DirectoryConnector, emails: list[str]
) -> dict[str, tuple[str, Known]]:
    """This connector's users with these emails (by email_key), with their stable ids."""
    keys = sorted({email_key(email) for email in emails})
    owned: dict[str, tuple[str, Known]] = {}
    for start in range(0, len(keys), CHUNK):
        ids = session.scalars(
            select(IdentityLink.external_id)
            .join(User, User.id == IdentityLink.user_id)
            .where(
                IdentityLink.connector_id == connector.id,
                User.email_key.in_(keys[start : start + CHUNK]),
            )
        ).all()
        for ext, known in load_known(session, connector, list(ids)).items():
            owned[email_key(known.email)] = (ext, known)
    return owned


def fetch_plain(session: Session, query: Select[*tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows as the driver returns them: for a query whose columns are all plain text or
    numbers, this skips SQLAlchemy's per-row result processing (100,000 owned users)."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = query.compile(dialect=dialect)
    processed: dict[str, Any] = {}
    for key, value in compiled.params.items():
        process = compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect)
        processed[key] = process(value) if process is not None else value
    if compiled.positional:
        params: Any = tuple(processed[key] for key in compiled.positiontup or [])
    else:
        params = processed
    # A server-side cursor on PostgreSQL: a client-side result would hold every row in the
    # driver's buffer (tens of megabytes at 100,000 users) beside the objects built from it.
    # Per statement: Connection.execution_options() would switch the whole transaction's
    # later queries to server-side cursors too.
    if dialect.name == "postgresql":
        # A cursor is planned for its first tenth of rows (cursor_tuple_fraction 0.1):
        # right after an import, without statistics, the memberships' join became a nested
        # loop of 2,000,000 index probes (2.8 s for 150,000 rows, against 0.2 s hashed).
        # Every caller reads every row; for this transaction only.
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1")
    result = connection.exec_driver_sql(
        compiled.string, params, execution_options={"stream_results": True}
    )
    while batch := result.fetchmany(1000):  # streamed, so rows and users are not both held
        yield from batch


def _mark_reactivatable(session: Session, known: dict[str, Known]) -> None:
    """Which revoked people a sync may bring back, and which it would stand beside the
    revoking source on (it says they are inactive too), is the lifecycle policy's decision."""
    revoked = {
        uuid.UUID(k.user_id): k for k in known.values() if k.status == UserStatus.REVOKED.value
    }
    for user_id, may in lifecycle.reactivations(session, revoked, Source.LDAP):
        revoked[user_id].reactivatable = may.allowed
        revoked[user_id].joins = may.joins
        if may.ended_at is not None:
            revoked[user_id].ended_at = may.ended_at.astimezone(UTC).strftime(ISO_FORMAT)


def load_unlinked_by_email(session: Session, connector: DirectoryConnector) -> dict[str, Unlinked]:
    """Users of the organisation this connector does not own, with who manages them."""
    owned = select(IdentityLink.user_id).where(IdentityLink.connector_id == connector.id)
    users = session.execute(
        select(User.id, User.email_key).where(
            User.organisation_id == connector.organisation_id, User.id.not_in(owned)
        )
    ).all()
    owners: dict[uuid.UUID, str] = {}
    ids = [row.id for row in users]
    for start in range(0, len(ids), CHUNK):
        for link in session.execute(
            select(IdentityLink.user_id, IdentityLink.source).where(
                IdentityLink.user_id.in_(ids[start : start + CHUNK]),
                IdentityLink.deleted_at.is_(None),
                IdentityLink.source.in_(MANAGING_SOURCES),
            )
        ):
            owners[link.user_id] = link.source.value
    return {
        row.email_key: Unlinked(user_id=str(row.id), owner=owners.get(row.id, "")) for row in users
    }


def load_membership_state(session: Session, connector: DirectoryConnector) -> MembershipState:
    # Plain text streamed from the server (a buffered result of 150,000 rows was 40 MB),
    # each stable id kept once though a person is in several teams: interned, as load_known
    # and the reconciler do, so the state, the owned users and the read share one string.
    query = (
        select(
            Team.name_key,
            Team.name,
            IdentityLink.external_id,
            cast(TeamMembership.source, String).label("source"),
        )
        .join(Team, Team.id == TeamMembership.team_id)
        .join(IdentityLink, IdentityLink.user_id == TeamMembership.user_id)
        .where(
            Team.organisation_id == connector.organisation_id,
            IdentityLink.connector_id == connector.id,
        )
    )
    state = MembershipState(filled_before=_filled_groups(session, connector))
    intern = sys.intern
    for name_key, name, external_id, source in fetch_plain(session, query):
        key = intern(name_key)
        state.memberships.setdefault(key, {})[intern(external_id)] = intern(source)
        state.team_names[key] = name
    return state


def _filled_groups(session: Session, connector: DirectoryConnector) -> frozenset[str]:
    """The groups that held members at the connector's last applied run (its plan's)."""
    filled = session.scalar(
        select(DirectorySyncRun.plan["filled_groups"])
        .where(
            DirectorySyncRun.connector_id == connector.id,
            DirectorySyncRun.status.in_(APPLIED_RUN_STATUSES),
            DirectorySyncRun.dry_run.is_(False),
        )
        .order_by(DirectorySyncRun.finished_at.desc())
        .limit(1)
    )
    return frozenset(filled) if isinstance(filled, list) else frozenset()


def directory_teams(session: Session, organisation_id: uuid.UUID) -> dict[str, str]:
    """Teams a directory sync made in this organisation: name key -> name."""
    rows = session.execute(
        select(Team.name_key, Team.name).where(
            Team.organisation_id == organisation_id, Team.external_source == Source.LDAP
        )
    )
    return {row.name_key: row.name for row in rows}


def mapped_team_names(session: Session, organisation_id: uuid.UUID) -> list[str]:
    """Every team name a connector of this organisation maps a group to (enabled or not)."""
    mappings = session.scalars(
        select(DirectoryConnector.group_teams).where(
            DirectoryConnector.organisation_id == organisation_id
        )
    )
    return [name for mapping in mappings for name in mapping.values()]


def connector_view(connector: DirectoryConnector) -> dict[str, Any]:
    """A connector as the API shows it: never the password, only whether one is set."""
    return {
        "id": str(connector.id),
        "name": connector.name,
        "enabled": connector.enabled,
        "server_urls": list(connector.server_urls),
        "start_tls": connector.start_tls,
        "ca_file": connector.ca_file,
        "verify_tls": connector.verify_tls,
        "bind_dn": connector.bind_dn,
        "has_bind_password": bool(connector.bind_password_encrypted),
        "base_dn": connector.base_dn,
        "user_filter": connector.user_filter,
        "group_base_dn": connector.group_base_dn,
        "group_filter": connector.group_filter,
        "page_size": connector.page_size,
        "connect_timeout": connector.connect_timeout,
        "search_timeout": connector.search_timeout,
        "full_sync_minutes": connector.full_sync_minutes,
        "incremental_minutes": connector.incremental_minutes,
        "preset": connector.preset,
        "attribute_mapping": dict(connector.attribute_mapping),
        "group_teams": dict(connector.group_teams),
        "group_roles": dict(connector.group_roles),
        "safety": policy_of(connector).model_dump(),
        "watermark": connector.watermark,
        "last_full_sync_at": _iso(connector.last_full_sync_at),
        "last_incremental_sync_at": _iso(connector.last_incremental_sync_at),
    }


def run_view(run: DirectorySyncRun, *, with_plan: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(run.id),
        "connector_id": str(run.connector_id),
        "kind": run.kind.value,
        "status": run.status.value,
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_ms": run.duration_ms,
        "counts": {
            "read": run.read_count,
            "created": run.created_count,
            "updated": run.updated_count,
            "revoked": run.revoked_count,
            "reactivated": run.reactivated_count,
            "unchanged": run.unchanged_count,
            "errors": run.error_count,
            # memberships and roles, kept with the applied plan (no columns of their own)
            **((run.plan or {}).get("applied") or {}),
        },
        "error": run.error,
        "error_code": run.error_code,
        "decided_by": run.decided_by,
        "decided_at": _iso(run.decided_at),
    }
    if with_plan:
        view["plan"] = run.plan
    elif run.plan is not None:
        view["plan_summary"] = run.plan.get("summary")
    return view


def list_runs(
    session: Session, connector: DirectoryConnector, *, limit: int = 50
) -> list[DirectorySyncRun]:
    return list(
        session.scalars(
            select(DirectorySyncRun)
            .where(DirectorySyncRun.connector_id == connector.id)
            .order_by(DirectorySyncRun.finished_at.desc())
            .limit(limit)
        )
    )


def list_organisation_runs(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    status: SyncRunStatus | None = None,
    limit: int = 50,
) -> list[tuple[DirectorySyncRun, str]]:
    """The organisation's runs of every connector, newest first, with the connector's name."""
    query = (
        select(DirectorySyncRun, DirectoryConnector.name)
        .join(DirectoryConnector, DirectoryConnector.id == DirectorySyncRun.connector_id)
        .where(DirectorySyncRun.organisation_id == organisation_id)
        .order_by(DirectorySyncRun.started_at.desc(), DirectorySyncRun.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(DirectorySyncRun.status == status)
    return [(run, name) for run, name in session.execute(query)]


def running_runs(connector_id: uuid.UUID | None = None) -> Select[uuid.UUID, uuid.UUID]:
    """The runs still `running` (of one connector): the reaper's question."""
    query = select(DirectorySyncRun.id, DirectorySyncRun.connector_id).where(
        DirectorySyncRun.status == SyncRunStatus.RUNNING
    )
    if connector_id is not None:
        query = query.where(DirectorySyncRun.connector_id == connector_id)
    return query


def approving_runs() -> Select[uuid.UUID, uuid.UUID]:
    """The runs whose approval is recorded and not yet applied nor refused."""
    return (
        select(DirectorySyncRun.id, DirectorySyncRun.connector_id)
        .where(DirectorySyncRun.status == SyncRunStatus.APPROVING)
        .order_by(DirectorySyncRun.started_at, DirectorySyncRun.id)
    )


def last_success(connector_id: uuid.UUID) -> Select[Any]:
    """When the connector's latest applied (not dry) run finished."""
    return select(func.max(DirectorySyncRun.finished_at)).where(
        DirectorySyncRun.connector_id == connector_id,
        DirectorySyncRun.status.in_(APPLIED_RUN_STATUSES),
        DirectorySyncRun.dry_run.is_(False),
    )


def list_connectors(session: Session, organisation_id: uuid.UUID) -> list[DirectoryConnector]:
    return list(
        session.scalars(
            select(DirectoryConnector)
            .where(DirectoryConnector.organisation_id == organisation_id)
            .order_by(DirectoryConnector.name)
        )
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
