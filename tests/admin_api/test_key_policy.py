"""The key policy in the admin API: what revoking a person does to the organisation keys they
created (issue 12; it was CLI-only). Admins read and set it; a change is audited; bad input is
a problem document, never a 500."""

from __future__ import annotations

from sqlalchemy import select

from models.actions import lifecycle
from models.entities import AuditEvent, Organisation, User, VirtualApiKey
from models.enums import KeyType
from tests.admin_api.conftest import assert_problem
from tests.support import factories as f

PATH = "/api/v1/key-policy"


def test_an_admin_reads_the_policy_and_sets_it_audited(client, session, world):
    shown = client.get(PATH, headers=world.auth("admin"))
    assert shown.status_code == 200
    assert shown.get_json()["org_key_policy"] == "hold"  # the default

    changed = client.put(PATH, json={"org_key_policy": "revoke"}, headers=world.auth("admin"))

    assert changed.status_code == 200 and changed.get_json()["org_key_policy"] == "revoke"
    assert client.get(PATH, headers=world.auth("admin")).get_json()["org_key_policy"] == "revoke"
    # another organisation's policy is untouched
    other = client.get(PATH, headers=world.auth("b_admin")).get_json()
    assert other["org_key_policy"] == "hold"
    [event] = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "organisation.settings_changed")
    ).all()
    assert event.before == {"org_key_policy": "hold"}
    assert event.after == {"org_key_policy": "revoke"}
    assert event.source == "admin" and event.actor_user_id == world.users["admin"]


def test_setting_the_policy_it_already_has_changes_nothing_and_audits_nothing(
    client, session, world, unchanged
):
    unchanged()
    again = client.put(PATH, json={"org_key_policy": "hold"}, headers=world.auth("admin"))

    assert again.status_code == 200 and again.get_json()["org_key_policy"] == "hold"
    unchanged()


def test_the_policy_set_through_the_api_decides_the_leavers_organisation_keys(
    client, session, world
):
    assert (
        client.put(PATH, json={"org_key_policy": "revoke"}, headers=world.auth("admin")).status_code
        == 200
    )
    session.expire_all()
    org = session.get_one(Organisation, world.org_a)
    leaver = session.get_one(User, world.users["colleague"])
    key = f.make_key(session, org, owner=None, key_type=KeyType.ORGANISATION, created_by=leaver)
    session.commit()

    lifecycle.revoke(session, user=leaver, actor=f.SETUP)
    session.commit()

    assert session.get_one(VirtualApiKey, key.id).revoked is True


def test_bad_input_is_a_problem_document_and_changes_nothing(client, session, world):
    cases = [
        ({"json": {}}, "org_key_policy"),
        ({"json": {"org_key_policy": "maybe"}}, "org_key_policy"),
        ({"json": {"org_key_policy": 1}}, "org_key_policy"),
        ({"json": {"org_key_policy": "revoke", "extra": True}}, "extra"),
        ({"json": ["revoke"]}, "object"),
        ({"data": "{not json", "content_type": "application/json"}, "json"),
    ]
    for kwargs, detail in cases:
        response = client.put(PATH, headers=world.auth("admin"), **kwargs)
        body = assert_problem(response, 400)
        assert detail in str(body).lower(), body  # names what is wrong
    assert_problem(client.put(PATH, json={"org_key_policy": "revoke"}), 401)
    for who in ("manager", "user"):
        response = client.put(PATH, json={"org_key_policy": "revoke"}, headers=world.auth(who))
        assert_problem(response, 403)
        assert_problem(client.get(PATH, headers=world.auth(who)), 403)
    assert client.get(PATH, headers=world.auth("admin")).get_json()["org_key_policy"] == "hold"
    assert (
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == "organisation.settings_changed")
        ).all()
        == []
    )
