"""Source health: a SCIM source quiet beyond its allowance raises one alert through the
notification hooks and clears it when the IdP pushes again (checks run by a real worker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.actor import Actor
from models.base import utcnow
from models.entities import ApiToken, AuditEvent, Organisation, OutboxMessage, SourceIncident
from models.enums import Role, StreamPreset
from models.source_health import check_sources, clear_incident, open_incidents
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.siem import Receiver, siem_receiver
from worker.celery_app import celery_app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with siem_receiver() as running:
        yield running


def _alerts(receiver: Receiver, kind: str) -> list[dict]:
    bodies = [json.loads(r.body) for r in receiver.accepted()]
    return [body for body in bodies if body.get("type") == kind]


def _quiet_scim_org(session, settings, receiver) -> tuple[Organisation, str]:
    org = f.make_org(session)
    secret = f.scim_token(session, org)
    token = session.scalars(select(ApiToken).where(ApiToken.organisation_id == org.id)).one()
    token.last_used_at = utcnow() - timedelta(minutes=10)  # the IdP last pushed 10 minutes ago
    org.settings.scim_silence_seconds = 300
    f.make_hook(
        session,
        org.id,
        receiver.url,
        secret_key=settings.secret_key,
        name="ops",
        events=["source.*"],
        actor=Actor.system("test"),
    )
    session.commit()
    return org, secret


def test_a_silent_scim_source_alerts_once_and_clears_when_it_pushes_again(
    session, sessions, settings, receiver, worker, client
) -> None:
    org, secret = _quiet_scim_org(session, settings, receiver)
    celery_app.send_task("health.check_sources")
    celery_app.send_task("health.check_sources")  # a second check in the same incident
    (alert,) = wait_relaying(lambda: _alerts(receiver, "source.silent"), what="the silence alert")
    assert alert["data"]["source"] == "scim"
    assert "nothing for" in alert["data"]["message"]

    response = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    celery_app.send_task("health.check_sources")
    wait_relaying(lambda: _alerts(receiver, "source.recovered"), what="the recovery notice")
    celery_app.send_task("health.check_sources")  # healthy: nothing more to say

    with sessions() as check:
        incidents = check.scalars(
            select(SourceIncident).where(SourceIncident.organisation_id == org.id)
        ).all()
        assert len(incidents) == 1 and incidents[0].cleared_at is not None
        actions = check.scalars(
            select(AuditEvent.action).where(
                AuditEvent.organisation_id == org.id, AuditEvent.target_type == "source"
            )
        ).all()
        assert sorted(actions) == ["source.recovered", "source.silent"]
    assert len(_alerts(receiver, "source.silent")) == 1
    assert len(_alerts(receiver, "source.recovered")) == 1


def test_admins_see_source_health_and_tune_the_allowances(client, session, settings) -> None:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    user = f.make_user(session, org)
    admin_token, user_token = f.admin_token(session, org, admin), f.admin_token(session, org, user)
    f.scim_token(session, org)
    session.commit()
    bearer = {"Authorization": f"Bearer {admin_token}"}
    body = client.get("/api/v1/source-health", headers=bearer).get_json()
    (scim,) = body["sources"]
    assert scim["source"] == "scim" and scim["healthy"] is True
    assert scim["detail"] == "no request yet with a live SCIM token"
    assert body["settings"]["scim_silence_seconds"] == 24 * 3600
    changed = client.patch(
        "/api/v1/source-health/settings", json={"scim_silence_seconds": 600}, headers=bearer
    )
    assert changed.status_code == 200 and changed.get_json()["scim_silence_seconds"] == 600
    refused = client.patch(
        "/api/v1/source-health/settings", json={"scim_silence_seconds": 5}, headers=bearer
    )
    assert refused.status_code == 400
    forbidden = client.get(
        "/api/v1/source-health", headers={"Authorization": f"Bearer {user_token}"}
    )
    assert forbidden.status_code == 403
    audited = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "organisation.settings_changed")
    ).one()
    assert audited.after == {"scim_silence_seconds": 600}


def test_metrics_show_silence_incidents_and_stream_lag(client, session, settings) -> None:
    org = f.make_org(session)
    f.scim_token(session, org)
    f.make_stream(
        session,
        org.id,
        "http://127.0.0.1:9/never",
        secret_key=settings.secret_key,
        batch_size=10,
        actor=Actor.system("test"),
    )
    session.commit()
    behind = session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.organisation_id == org.id)
    )
    session.rollback()
    text = client.get("/metrics").get_data(as_text=True)
    assert f'odock_source_silence_seconds{{organisation="{org.slug}",source="scim"}}' in text
    lag = f'odock_audit_stream_lag_events{{organisation="{org.slug}",stream="siem"}} '
    assert f"{lag}{float(behind)}" in text
    for family in (
        "odock_directory_runs",
        "odock_directory_changes",
        "odock_quarantines_pending",
        "odock_review_findings_open",
        "odock_audit_stream_lag_events",
    ):
        assert f"# TYPE {family} gauge" in text


def test_the_checks_and_the_stream_tick_are_on_the_beat_schedule(settings) -> None:
    from worker.celery_app import beat_schedule

    schedule = beat_schedule(settings)
    assert schedule["health-check-sources"]["task"] == "health.check_sources"
    assert schedule["audit-streams-tick"]["task"] == "audit.stream_tick"


def test_ldap_and_stream_incidents_open_and_clear_on_their_own_signs_of_life(session) -> None:
    from models.entities import AuditStream, DirectoryConnector, DirectorySyncRun, OutboxMessage
    from models.enums import SyncKind, SyncRunStatus

    org = f.make_org(session)
    now = utcnow()
    connector = DirectoryConnector(
        organisation_id=org.id, name="corp", base_dn="dc=corp", created_at=now - timedelta(hours=4)
    )
    stream = AuditStream(
        organisation_id=org.id,
        name="siem",
        preset=StreamPreset.GENERIC,
        target="http://127.0.0.1:9/x",
        signing_secrets=[],
        first_failure_at=now - timedelta(minutes=20),
        consecutive_failures=9,
    )
    session.add_all([connector, stream])
    session.flush()
    opened = check_sources(session, organisation_id=org.id, now=now)
    assert sorted(opened) == sorted([f"opened:ldap:{connector.id}", f"opened:stream:{stream.id}"])
    assert check_sources(session, organisation_id=org.id, now=now) == []  # once per incident

    session.add(
        DirectorySyncRun(
            organisation_id=org.id,
            connector_id=connector.id,
            kind=SyncKind.FULL,
            status=SyncRunStatus.SUCCEEDED,
            started_at=now,
            finished_at=now,
        )
    )
    stream.first_failure_at, stream.consecutive_failures = None, 0
    session.flush()
    cleared = check_sources(session, organisation_id=org.id, now=now + timedelta(seconds=1))
    assert sorted(cleared) == sorted(
        [f"cleared:ldap:{connector.id}", f"cleared:stream:{stream.id}"]
    )
    events = [
        m.kwargs["event"]
        for m in session.scalars(select(OutboxMessage)).all()
        if m.task == "notifications.dispatch"
    ]
    assert sorted(events) == ["source.recovered"] * 2 + ["source.silent"] * 2
    session.rollback()


def test_an_incident_two_checks_read_open_is_cleared_and_announced_once(
    session, sessions, settings, receiver
) -> None:
    """Two checks run at once (two beats, a retry): both read the incident open, one clears
    it; the other's clear finds it cleared and says nothing."""
    org, _ = _quiet_scim_org(session, settings, receiver)
    check_sources(session, organisation_id=org.id, now=utcnow())
    session.commit()
    with sessions() as late:
        (stale,) = open_incidents(late, organisation_id=org.id)  # read before the other commits
        late.expunge(stale)
        late.rollback()
        token = session.scalars(select(ApiToken).where(ApiToken.organisation_id == org.id)).one()
        token.last_used_at = utcnow()  # the IdP pushed again
        check_sources(session, organisation_id=org.id, now=utcnow())  # (or a check left running)
        session.commit()
        late.add(stale)
        assert clear_incident(late, stale, None, utcnow()) is False
        late.commit()
    recovered = session.scalars(
        select(AuditEvent).where(
            AuditEvent.organisation_id == org.id, AuditEvent.action == "source.recovered"
        )
    ).all()
    assert len(recovered) == 1
    notices = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "notifications.dispatch")
    ).all()
    assert [n["event"] for n in notices].count("source.recovered") == 1
