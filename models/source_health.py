"""Is each configured source of an organisation alive? Incidents when one goes quiet.

A source's last sign of life: SCIM, the last request with a live SCIM token; LDAP, the last
successful run of each enabled connector; IdP events, the last delivery received; an audit
stream, its last accepted batch while it is failing. When that is older than the
organisation's allowance (settings, with defaults) an incident opens, the admins are told
through the notification hooks, once; when the source is alive again it clears and they are
told again. Both are audited. One open incident per (organisation, source) is a database fact.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import audit
from models.actions.idp_events import CHANNEL_EVENTS, CHANNEL_OKTA
from models.actor import Actor
from models.entities import (
    ApiToken,
    AuditStream,
    DirectoryConnector,
    DirectorySyncRun,
    EventHookConfig,
    NotificationHook,
    OrganisationSettings,
    ReceivedDelivery,
    SourceIncident,
)
from models.enums import SyncRunStatus, TokenScope
from models.notifications import notify
from models.queries import directory as directory_queries

EVENT_SILENT = "source.silent"
EVENT_RECOVERED = "source.recovered"
HEALTH_ACTOR = Actor.schedule("health.check_sources")


@dataclass(frozen=True)
class SourceStatus:
    source: str  # "scim", "idp_events", "ldap:<connector id>", "stream:<stream id>"
    name: str
    last_seen_at: datetime | None
    allowance_seconds: int
    failing_since: datetime | None = None  # streams and LDAP: the first failure in a row
    detail: str = ""

    def quiet_for(self, now: datetime) -> float:
        if self.source.startswith("stream:"):  # a stream with nothing to send is not quiet
            return (now - self.failing_since).total_seconds() if self.failing_since else 0.0
        if self.last_seen_at is None:
            return 0.0
        return max(0.0, (now - self.last_seen_at).total_seconds())

    def overdue(self, now: datetime) -> bool:
        return self.quiet_for(now) > self.allowance_seconds

    def view(self, now: datetime) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
            "quiet_seconds": round(self.quiet_for(now), 1),
            "allowance_seconds": self.allowance_seconds,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "healthy": not self.overdue(now),
            "detail": self.detail,
        }


def source_statuses(
    session: Session, *, organisation_id: uuid.UUID, now: datetime
) -> list[SourceStatus]:
    """Every configured source of the organisation and how long it has been quiet."""
    limits = session.get(OrganisationSettings, organisation_id) or OrganisationSettings()
    return [
        *_scim(session, organisation_id, now, limits),
        *_idp_events(session, organisation_id, limits),
        *_ldap(session, organisation_id, limits),
        *_streams(session, organisation_id, limits),
    ]


def failing_hooks(session: Session, *, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    hooks = session.scalars(
        select(NotificationHook).where(
            NotificationHook.organisation_id == organisation_id,
            or_(NotificationHook.enabled.is_(False), NotificationHook.consecutive_failures > 0),
        )
    )
    return [
        {
            "id": str(hook.id),
            "name": hook.name,
            "enabled": hook.enabled,
            "consecutive_failures": hook.consecutive_failures,
            "failing_since": hook.first_failure_at.isoformat() if hook.first_failure_at else None,
            "disabled_reason": hook.disabled_reason,
        }
        for hook in hooks
    ]


def open_incidents(session: Session, *, organisation_id: uuid.UUID) -> list[SourceIncident]:
    return list(
        session.scalars(
            select(SourceIncident)
            .where(
                SourceIncident.organisation_id == organisation_id,
                SourceIncident.cleared_at.is_(None),
            )
            .order_by(SourceIncident.opened_at)
        )
    )


def check_sources(session: Session, *, organisation_id: uuid.UUID, now: datetime) -> list[str]:
    """Open an incident for each overdue source and clear the ones that recovered (or are no
    longer configured); the caller commits. Returns what changed, e.g. `opened:scim`."""
    statuses = {
        s.source: s for s in source_statuses(session, organisation_id=organisation_id, now=now)
    }
    incidents = {i.source: i for i in open_incidents(session, organisation_id=organisation_id)}
    changes = []
    for source, status in statuses.items():
        if status.overdue(now) and source not in incidents:
            _open(session, organisation_id, status, now)
            changes.append(f"opened:{source}")
    for source, incident in incidents.items():
        current = statuses.get(source)
        if (current is None or not current.overdue(now)) and clear_incident(
            session, incident, current, now
        ):
            changes.append(f"cleared:{source}")
    return changes


def _open(
    session: Session, organisation_id: uuid.UUID, status: SourceStatus, now: datetime
) -> None:
    quiet = int(status.quiet_for(now))
    reason = (
        f"{status.name}: failing for {quiet} s"
        if status.source.startswith("stream:")
        else f"{status.name}: nothing for {quiet} s"
    ) + f" (allowed {status.allowance_seconds} s)"
    incident = SourceIncident(
        organisation_id=organisation_id,
        source=status.source,
        opened_at=now,
        reason=reason,
        last_seen_at=status.last_seen_at,
    )
    session.add(incident)
    session.flush()  # the unique open-incident index refuses a second one here
    after = status.view(now) | {"incident_id": str(incident.id), "reason": reason}
    audit.record(
        session,
        actor=HEALTH_ACTOR,
        organisation_id=organisation_id,
        action=EVENT_SILENT,
        target_type="source",
        target_id=status.source,
        after=after,
    )
    notify(
        session,
        organisation_id=organisation_id,
        event=EVENT_SILENT,
        payload={"message": reason, **after},
    )


def clear_incident(
    session: Session, incident: SourceIncident, status: SourceStatus | None, now: datetime
) -> bool:
    """Clear the incident, audited and announced once: False when a parallel check that read
    it open too has cleared it first (a compare-and-set, as the index guards the opening)."""
    cleared = session.execute(
        update(SourceIncident)
        .where(SourceIncident.id == incident.id, SourceIncident.cleared_at.is_(None))
        .values(cleared_at=now)
        .execution_options(synchronize_session=False)
    )
    if cleared.rowcount != 1:  # type: ignore[attr-defined]
        return False
    set_committed_value(incident, "cleared_at", now)  # the row says so already
    message = (
        f"{status.name} is alive again" if status else f"{incident.source} is no longer configured"
    )
    after = {
        "incident_id": str(incident.id),
        "source": incident.source,
        "opened_at": incident.opened_at.isoformat(),
        "cleared_at": now.isoformat(),
        "message": message,
    }
    audit.record(
        session,
        actor=HEALTH_ACTOR,
        organisation_id=incident.organisation_id,
        action=EVENT_RECOVERED,
        target_type="source",
        target_id=incident.source,
        before={"reason": incident.reason},
        after=after,
    )
    notify(session, organisation_id=incident.organisation_id, event=EVENT_RECOVERED, payload=after)
    return True


def _scim(
    session: Session, organisation_id: uuid.UUID, now: datetime, limits: OrganisationSettings
) -> list[SourceStatus]:
    live = (
        ApiToken.organisation_id == organisation_id,
        ApiToken.scope == TokenScope.SCIM,
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
    )
    used, created = session.execute(
        select(func.max(ApiToken.last_used_at), func.max(ApiToken.created_at)).where(*live)
    ).one()
    if created is None:
        return []
    # A token never used is quiet since it was made: the IdP was never connected.
    return [
        SourceStatus(
            "scim",
            "SCIM provisioning",
            used or created,
            limits.scim_silence_seconds or 24 * 3600,
            detail="" if used else "no request yet with a live SCIM token",
        )
    ]


def _idp_events(
    session: Session, organisation_id: uuid.UUID, limits: OrganisationSettings
) -> list[SourceStatus]:
    config = session.get(EventHookConfig, organisation_id)
    if config is None or not (config.okta_secret_hash or config.signing_secrets):
        return []
    received = session.scalar(
        select(func.max(ReceivedDelivery.received_at)).where(
            ReceivedDelivery.organisation_id == organisation_id,
            ReceivedDelivery.channel.in_((CHANNEL_OKTA, CHANNEL_EVENTS)),
        )
    )
    lag = session.scalar(
        select(func.max(ReceivedDelivery.lag_ms)).where(
            ReceivedDelivery.organisation_id == organisation_id,
            ReceivedDelivery.channel.in_((CHANNEL_OKTA, CHANNEL_EVENTS)),
            ReceivedDelivery.received_at >= (received or config.created_at) - timedelta(hours=1),
        )
    )
    return [
        SourceStatus(
            "idp_events",
            "IdP event hooks",
            received or config.created_at,
            limits.idp_events_silence_seconds or 24 * 3600,
            detail=f"received to applied, last hour max {lag} ms" if lag is not None else "",
        )
    ]


def _ldap(
    session: Session, organisation_id: uuid.UUID, limits: OrganisationSettings
) -> list[SourceStatus]:
    connectors = session.scalars(
        select(DirectoryConnector).where(
            DirectoryConnector.organisation_id == organisation_id,
            DirectoryConnector.enabled.is_(True),
        )
    )
    statuses = []
    for connector in connectors:
        succeeded = session.scalar(directory_queries.last_success(connector.id))
        latest = session.scalar(
            select(DirectorySyncRun)
            .where(DirectorySyncRun.connector_id == connector.id)
            .order_by(DirectorySyncRun.started_at.desc())
            .limit(1)
        )
        failing = latest is not None and latest.status is SyncRunStatus.FAILED
        statuses.append(
            SourceStatus(
                f"ldap:{connector.id}",
                f"LDAP {connector.name}",
                succeeded or connector.created_at,
                limits.ldap_silence_seconds or 3 * 3600,
                failing_since=latest.started_at if failing and latest else None,
                detail=f"last run failed: {latest.error_code or latest.error[:200]}"
                if failing and latest
                else "",
            )
        )
    return statuses


def _streams(
    session: Session, organisation_id: uuid.UUID, limits: OrganisationSettings
) -> list[SourceStatus]:
    streams = session.scalars(
        select(AuditStream).where(
            AuditStream.organisation_id == organisation_id, AuditStream.enabled.is_(True)
        )
    )
    return [
        SourceStatus(
            f"stream:{stream.id}",
            f"audit stream {stream.name}",
            stream.last_success_at,
            limits.stream_failure_seconds or 15 * 60,
            failing_since=stream.first_failure_at,
            detail=stream.last_error or "",
        )
        for stream in streams
    ]
