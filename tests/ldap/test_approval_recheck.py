"""Approving a held plan: refused once a later sync completed, otherwise re-checked against the
directory as it is now (what no longer holds is dropped and reported)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.actions.directory_connectors import update_connector
from models.actions.directory_sync import approve_run
from models.directory_runs import approve_quarantined
from models.entities import AuditEvent, DirectoryConnector, DirectorySyncRun, Organisation
from models.enums import Role, SyncRunStatus, UserStatus
from models.errors import InvalidTransition
from tests.ldap.conftest import get_run, linked_users
from tests.support import factories

NARROW = "(&(objectClass=inetOrgPerson)(uid=alice))"


def _change(session, settings, connector, **fields):
    update_connector(
        session,
        connector=session.get_one(DirectoryConnector, connector.id),
        fields=fields,
        bind_password=None,
        settings=settings,
        actor=factories.SETUP,
    )
    session.commit()


def _approve(sessions, settings, connector, run_id):
    return approve_quarantined(
        sessions,
        settings,
        organisation_id=connector.organisation_id,
        run_id=uuid.UUID(run_id),
        actor=factories.SETUP,
    )


def _all_active(sessions, connector) -> bool:
    return all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())


def test_a_plan_outdated_by_a_later_sync_cannot_be_approved(
    make_connector, sync, sessions, session, settings
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    _change(session, settings, connector, user_filter=NARROW)  # narrowed by mistake
    held = sync(connector)
    assert held.status == "quarantined" and held.summary["revoke"] == 3
    _change(session, settings, connector, user_filter="")  # fixed
    assert sync(connector).status == "succeeded"

    with pytest.raises(InvalidTransition, match="later sync of this connector"):
        _approve(sessions, settings, connector, held.run_id)
    with sessions() as s, pytest.raises(InvalidTransition, match="outdated"):
        approve_run(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(held.run_id)), actor=factories.SETUP
        )
    assert get_run(sessions, held.run_id).status is SyncRunStatus.QUARANTINED
    assert _all_active(sessions, connector)


def test_approval_rereads_the_directory_and_drops_what_no_longer_holds(
    make_connector, sync, sessions, session, settings, directory
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    for uid in ("bob", "carol"):
        directory.replace(directory.person_dn(uid), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    assert held.status == "quarantined" and held.summary["revoke"] == 2
    directory.replace(directory.person_dn("carol"), "pwdAccountLockedTime")  # unlocked since

    applied = _approve(sessions, settings, connector, held.run_id)
    assert applied.revoked == 1
    users = linked_users(sessions, connector)
    assert users["bob"].status is UserStatus.REVOKED
    assert users["carol"].status is UserStatus.ACTIVE
    run = get_run(sessions, held.run_id)
    assert run.status is SyncRunStatus.APPROVED
    assert run.plan["dropped_counts"] == {"revokes": 1}
    assert [item["email"].split("@")[0] for item in run.plan["dropped"]["revokes"]] == ["carol"]
    with sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "directory_sync.approved"))
        assert event is not None and event.after["dropped"] == {"revokes": 1}
        s.rollback()


def test_a_narrowed_filter_fixed_before_approval_revokes_nobody(
    make_connector, sync, sessions, session, settings
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    _change(session, settings, connector, user_filter=NARROW)
    held = sync(connector)
    assert held.status == "quarantined"
    _change(session, settings, connector, user_filter="")
    applied = _approve(sessions, settings, connector, held.run_id)
    assert applied.revoked == 0
    assert get_run(sessions, held.run_id).plan["dropped_counts"] == {"revokes": 3}
    assert _all_active(sessions, connector)


def test_api_approval_rechecks_and_an_unreachable_directory_refuses_it(
    client, make_connector, sync, sessions, session, settings, directory
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    assert held.status == "quarantined"
    org = session.get_one(Organisation, connector.organisation_id)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="admin@corp.test")
    auth = {"Authorization": f"Bearer {factories.admin_token(session, org, admin)}"}
    session.commit()
    url = f"/api/v1/directory/runs/{held.run_id}/approve"

    good_urls = list(connector.server_urls)
    _change(session, settings, connector, server_urls=["ldap://127.0.0.1:1"], connect_timeout=0.5)
    refused = client.post(url, headers=auth)
    assert refused.status_code == 503, refused.json
    assert refused.mimetype == "application/problem+json"
    assert "could not be read to re-check the plan" in refused.json["detail"]
    assert get_run(sessions, held.run_id).status is SyncRunStatus.QUARANTINED
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE

    _change(session, settings, connector, server_urls=good_urls)
    approved = client.post(url, headers=auth)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved"
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    assert client.post(url, headers=auth).status_code == 409
