"""A connector change that gives the watermark another meaning (a preset, the change attribute,
the base or a filter) resets it, audited: the next sync reads everything, and incremental ones
count from a mark of the new kind."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import AuditEvent, DirectoryConnector, Organisation
from models.enums import Role, SyncKind
from tests.ldap.conftest import AD_CONNECTOR, as_ad_accounts, get_run, linked_users
from tests.support import factories

PEOPLE = ("alice", "bob", "carol", "dave")


def _auth(session, connector) -> dict[str, str]:
    org = session.get_one(Organisation, connector.organisation_id)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="admin@corp.test")
    token = factories.admin_token(session, org, admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def _watermark(sessions, connector) -> str:
    with sessions() as s:
        mark = s.get_one(DirectoryConnector, connector.id).watermark
        s.rollback()
    return mark


def _resets(sessions, connector) -> list[AuditEvent]:
    with sessions() as s:
        events = list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "directory_connector.watermark_reset",
                    AuditEvent.target_id == str(connector.id),
                )
            )
        )
        s.expunge_all()
        s.rollback()
    return events


def test_a_switch_to_the_ad_preset_makes_the_next_sync_a_full_one(
    client, make_connector, sync, sessions, session, directory
):
    as_ad_accounts(directory, PEOPLE)
    connector = make_connector()
    assert sync(connector).status == "succeeded"
    csn = _watermark(sessions, connector)
    assert "#" in csn  # an OpenLDAP entryCSN
    auth = _auth(session, connector)

    # The AD preset, on the same people (identity kept): changes are dated by modifyTimestamp.
    mapping = {**AD_CONNECTOR["attribute_mapping"], "stable_id": "entryUUID", "username": "uid"}
    mapping["stable_id_format"] = "text"
    switched = client.patch(
        f"/api/v1/directory/connectors/{connector.id}",
        json={
            "preset": "active_directory",
            "attribute_mapping": mapping,
            "user_filter": AD_CONNECTOR["user_filter"],
        },
        headers=auth,
    )
    assert switched.status_code == 200, switched.json
    assert switched.json["watermark"] == ""
    [reset] = _resets(sessions, connector)
    assert reset.before == {"watermark": csn}
    assert reset.after == {
        "watermark": "",
        "changed": ["change_attribute", "group_filter", "user_filter"],
    }

    directory.replace(directory.person_dn("alice"), "displayName", b"Alice Kingsleigh")
    first = sync(connector, kind=SyncKind.INCREMENTAL)
    assert first.status == "succeeded", first
    assert get_run(sessions, first.run_id).kind is SyncKind.FULL
    assert linked_users(sessions, connector)["alice"].name == "Alice Kingsleigh"
    assert "#" not in _watermark(sessions, connector)  # a modifyTimestamp now

    directory.replace(directory.person_dn("bob"), "displayName", b"Bob Builder")
    second = sync(connector, kind=SyncKind.INCREMENTAL)
    assert second.status == "succeeded", second
    assert get_run(sessions, second.run_id).kind is SyncKind.INCREMENTAL
    assert linked_users(sessions, connector)["bob"].name == "Bob Builder"


def test_a_widened_filter_brings_in_the_people_it_now_matches(
    client, make_connector, sync, sessions, session
):
    connector = make_connector(user_filter="(&(objectClass=inetOrgPerson)(uid=alice))")
    assert sync(connector).status == "succeeded"
    assert sorted(linked_users(sessions, connector)) == ["alice"]
    auth = _auth(session, connector)
    url = f"/api/v1/directory/connectors/{connector.id}"

    unrelated = client.patch(url, json={"page_size": 3, "name": "corp-ldap"}, headers=auth)
    assert unrelated.status_code == 200 and unrelated.json["watermark"] != ""
    assert _resets(sessions, connector) == []

    widened = client.patch(url, json={"user_filter": "(objectClass=inetOrgPerson)"}, headers=auth)
    assert widened.status_code == 200 and widened.json["watermark"] == ""
    assert [event.after["changed"] for event in _resets(sessions, connector)] == [["user_filter"]]

    # Unchanged since the last sync, carol and dave were never read: only a full read finds them.
    outcome = sync(connector, kind=SyncKind.INCREMENTAL)
    assert outcome.status == "succeeded", outcome
    assert sorted(linked_users(sessions, connector)) == sorted(PEOPLE)


def test_a_bad_change_leaves_the_watermark_and_says_why(client, make_connector, sync, session):
    connector = make_connector()
    sync(connector)
    auth = _auth(session, connector)
    refused = client.patch(
        f"/api/v1/directory/connectors/{connector.id}",
        json={"preset": "no-such-directory"},
        headers=auth,
    )
    assert refused.status_code == 400, refused.json
    assert refused.mimetype == "application/problem+json"
    assert "unknown preset" in refused.json["detail"]
    shown = client.get(f"/api/v1/directory/connectors/{connector.id}", headers=auth).json
    assert shown["preset"] == "openldap" and shown["watermark"] != ""
