"""Setting, moving and clearing an end date: the admin API, the CLI and SCIM; bad values are
refused in each protocol's format and change nothing; who may clear whose date."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from connectors.scim.schemas import ENTERPRISE, USER
from models.actions import access_end, lifecycle
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, Organisation, User
from models.enums import Role, Source, UserStatus
from tests.access_end.conftest import scim_user_id
from tests.admin_api.conftest import assert_problem
from tests.scim.conftest import SCIM_TABLES, ScimClient, ops
from tests.support import factories as f
from tests.support.state import change_checker
from worker.tasks.access_end import end_due

SCIM = Actor(Source.SCIM, "scim token")
LDAP = Actor(Source.LDAP, "ldap")


@pytest.fixture
def world(session):  # type: ignore[no-untyped-def]
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org, email="pat@example.com")
    headers = {"Authorization": f"Bearer {f.admin_token(session, org, admin)}"}
    scim = f.scim_token(session, org)
    session.commit()
    return org, person.id, headers, scim


def _put(client, headers, user_id, body):  # type: ignore[no-untyped-def]
    return client.put(f"/api/v1/users/{user_id}/access-end", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"access_ends_at": "2027-01-31T17:00:00"}, "time zone"),
        ({"access_ends_at": "next friday"}, None),
        ({"access_ends_at": "1999-12-31T00:00:00Z"}, "after 2000"),
        ({"access_ends_at": "9999-12-31T23:59:59-12:00"}, "out of range"),
        ({"access_ends_at": "0001-01-01T00:00:00+14:00"}, "out of range"),
        ({}, None),
        ({"access_ends_at": None, "extra": 1}, None),
    ],
)
def test_the_api_refuses_a_bad_date_and_changes_nothing(
    client, sessions, world, body, detail
) -> None:
    _, user_id, headers, _ = world
    unchanged = change_checker(sessions, ("users", "audit_events"))
    unchanged()
    assert_problem(_put(client, headers, user_id, body), 400, detail=detail)
    unchanged()


def test_the_api_sets_moves_and_clears_each_audited(client, session, world) -> None:
    _, user_id, headers, _ = world
    ends = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    assert _put(client, headers, user_id, {"access_ends_at": ends.isoformat()}).status_code == 200
    later = ends + timedelta(days=2)
    assert _put(client, headers, user_id, {"access_ends_at": later.isoformat()}).status_code == 200
    answer = _put(client, headers, user_id, {"access_ends_at": None})
    assert answer.status_code == 200 and answer.get_json()["access_ends_at"] is None
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == str(user_id), AuditEvent.action.like("user.access_end%"))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    assert [e.action for e in events] == [
        "user.access_end_set",
        "user.access_end_changed",
        "user.access_end_cleared",
    ]
    assert events[1].after["cancelled_revocation_at"] == ends.isoformat().replace("+00:00", "Z")
    assert events[2].after["cancelled_revocation_at"] == later.isoformat().replace("+00:00", "Z")
    assert all(e.source is Source.ADMIN for e in events)


def test_the_cli_sets_and_clears(run, session, world) -> None:
    org, _, _, _ = world
    slug = org.slug
    session.commit()
    shown = json.loads(
        run(
            "users",
            "end-access",
            "--org",
            slug,
            "pat@example.com",
            "--at",
            "2027-01-31T17:00:00Z",
            "--json",
        ).output
    )
    assert shown["access_ends_at"] == "2027-01-31T17:00:00+00:00" and shown["changed"]
    cleared = json.loads(
        run("users", "end-access", "--org", slug, "pat@example.com", "--clear", "--json").output
    )
    assert cleared["access_ends_at"] is None
    bad = run("users", "end-access", "--org", slug, "pat@example.com", "--at", "soon", ok=False)
    assert "ISO 8601" in bad.output
    both = run("users", "end-access", "--org", slug, "pat@example.com", ok=False)
    assert "exactly one of --at or --clear" in both.output


def _scim_create(scim: ScimClient, leave: object) -> object:
    return scim.post(
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "userName": "sam@example.com",
            "emails": [{"value": "sam@example.com", "primary": True}],
            ENTERPRISE: {"employeeLeaveDateTime": leave},
        },
    )


@pytest.mark.parametrize(
    "leave",
    ["31/01/2027", "2027-01-31T17:00:00", 20270131, {"a": 1}, "9999-12-31T23:59:59-12:00"],
)
def test_scim_refuses_a_bad_leave_date_with_invalid_value(client, sessions, world, leave) -> None:
    scim = ScimClient(client, world[3])
    unchanged = change_checker(sessions, SCIM_TABLES)
    unchanged()
    answer = _scim_create(scim, leave)
    assert answer.status_code == 400, answer.json
    assert answer.json["scimType"] == "invalidValue"
    assert "employeeLeaveDateTime" in answer.json["detail"]
    unchanged()


def test_scim_sets_patches_and_clears_its_own_date_but_not_an_admins(
    client, session, world
) -> None:
    scim = ScimClient(client, world[3])
    created = _scim_create(scim, "2027-01-31T17:00:00Z")
    assert created.status_code == 201
    scim_id = created.json["id"]
    user_id = scim_user_id(session, scim_id)
    assert session.get_one(User, user_id).access_ends_at == datetime(2027, 1, 31, 17, tzinfo=UTC)
    session.commit()
    path = f"{ENTERPRISE}:employeeLeaveDateTime"
    moved = scim.patch(
        f"/Users/{scim_id}",
        ops({"op": "replace", "path": path, "value": "2027-02-28T09:00:00+01:00"}),
    )
    assert moved.status_code == 200, moved.json
    assert moved.json[ENTERPRISE]["employeeLeaveDateTime"] == "2027-02-28T08:00:00.000Z"
    cleared = scim.patch(f"/Users/{scim_id}", ops({"op": "replace", "path": path, "value": ""}))
    assert cleared.status_code == 200 and "employeeLeaveDateTime" not in cleared.json.get(
        ENTERPRISE, {}
    )
    session.expire_all()
    person = session.get_one(User, user_id)
    assert person.access_ends_at is None
    ends = datetime(2027, 3, 1, tzinfo=UTC)
    access_end.set_access_end(session, user=person, ends_at=ends, actor=f.SETUP)
    session.commit()
    # A PUT that sends no date leaves the admin's date alone.
    put = scim.put(
        f"/Users/{scim_id}",
        {
            "schemas": [USER],
            "userName": "sam@example.com",
            "emails": [{"value": "sam@example.com"}],
        },
    )
    assert put.status_code == 200
    session.expire_all()
    assert session.get_one(User, user_id).access_ends_at == ends


def test_a_source_clears_only_its_own_date(session) -> None:
    org = f.make_org(session)
    person = f.make_user(session, org)
    ends = utcnow() + timedelta(days=1)
    access_end.set_access_end(session, user=person, ends_at=ends, actor=LDAP)
    assert not access_end.set_access_end(session, user=person, ends_at=None, actor=SCIM)
    assert person.access_ends_at is not None
    assert access_end.set_access_end(session, user=person, ends_at=None, actor=LDAP)
    assert person.access_ends_at is None and person.access_ends_source is None


def test_a_source_brings_another_sources_date_only_earlier(session) -> None:
    """Two sources that disagree settle on the earlier date instead of taking turns; none
    extends access over the source that ended it. An admin may move any date."""
    org = f.make_org(session)
    person = f.make_user(session, org)
    now = utcnow().replace(microsecond=0)
    soon, later, sooner = (now + timedelta(days=days) for days in (10, 20, 5))
    access_end.set_access_end(session, user=person, ends_at=soon, actor=LDAP)
    assert not access_end.set_access_end(session, user=person, ends_at=later, actor=SCIM)
    assert (person.access_ends_at, person.access_ends_source) == (soon, Source.LDAP)
    assert access_end.set_access_end(session, user=person, ends_at=sooner, actor=SCIM)
    assert (person.access_ends_at, person.access_ends_source) == (sooner, Source.SCIM)
    assert not access_end.set_access_end(session, user=person, ends_at=soon, actor=LDAP)
    assert person.access_ends_at == sooner
    admin = Actor(Source.ADMIN, "admin")
    assert access_end.set_access_end(session, user=person, ends_at=later, actor=admin)
    assert (person.access_ends_at, person.access_ends_source) == (later, Source.ADMIN)


def test_scim_cannot_postpone_a_date_the_directory_set(client, session, world) -> None:
    scim = ScimClient(client, world[3])
    created = _scim_create(scim, None)
    scim_id = created.json["id"]
    person = session.get_one(User, scim_user_id(session, scim_id))
    contract_end = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    access_end.set_access_end(session, user=person, ends_at=contract_end, actor=LDAP)
    session.commit()
    path = f"{ENTERPRISE}:employeeLeaveDateTime"
    postponed = scim.patch(
        f"/Users/{scim_id}",
        ops({"op": "replace", "path": path, "value": "2099-01-01T00:00:00Z"}),
    )
    assert postponed.status_code == 200, postponed.json
    session.expire_all()
    assert session.get_one(User, person.id).access_ends_at == contract_end


def test_a_date_moved_after_the_schedule_revoked_does_not_claim_to_cancel_it(
    session, sessions, engine
) -> None:
    """An admin's request read the person before the schedule revoked them; its change is
    judged on the row as it is now, so the audit claims no cancelled revocation. (SQLite
    serialises writers: there the request's read waits for the revocation's commit.)"""
    org = f.make_org(session)
    person = f.make_user(session, org)
    passed = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    access_end.set_access_end(session, user=person, ends_at=passed, actor=f.SETUP)
    session.commit()
    user_id = person.id
    interleaved = engine.dialect.name == "postgresql"
    with sessions() as request, sessions() as beat:
        stale = request.get_one(User, user_id) if interleaved else None
        ended = access_end.end_access(beat, user_id=user_id, now=utcnow(), actor=f.SETUP)
        assert ended is lifecycle.Outcome.APPLIED
        beat.commit()
        stale = stale or request.get_one(User, user_id)
        later = passed + timedelta(days=30)
        admin = Actor(Source.ADMIN, "admin")
        assert access_end.set_access_end(request, user=stale, ends_at=later, actor=admin)
        request.commit()
    changed = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.access_end_changed")
    ).one()
    assert changed.after["access_ends_at"] == later.isoformat().replace("+00:00", "Z")
    assert "cancelled_revocation_at" not in changed.after


def test_the_scan_in_process_ends_once_and_a_reactivation_clears_the_passed_date(
    session, sessions
) -> None:
    org = f.make_org(session)
    person = f.make_user(session, org)
    ends = (utcnow() + timedelta(hours=5)).replace(microsecond=0)
    access_end.set_access_end(session, user=person, ends_at=ends, actor=f.SETUP)
    user_id = person.id
    session.commit()
    with time_machine.travel(ends - timedelta(seconds=1), tick=False):
        assert end_due() == 0
    with time_machine.travel(ends, tick=False):
        assert end_due() == 1
        assert end_due() == 0
    session.expire_all()
    person = session.get_one(User, user_id)
    assert person.status is UserStatus.REVOKED
    with time_machine.travel(ends + timedelta(hours=1), tick=False):
        outcome = lifecycle.reactivate(session, user=person, actor=f.SETUP)
        assert outcome is lifecycle.Outcome.APPLIED and person.access_ends_at is None
        session.commit()
        assert end_due() == 0
    session.expire_all()
    assert session.get_one(User, user_id).status is UserStatus.ACTIVE


def test_the_cli_sets_the_notice_days_and_refuses_a_bad_number(run, session) -> None:
    org = f.make_org(session)
    slug = org.slug
    session.commit()
    shown = json.loads(
        run("org", "departure-notice", "--org", slug, "--days", "14", "--json").output
    )
    assert shown["departure_notice_days"] == 14
    bad = run("org", "departure-notice", "--org", slug, "--days", "400", ok=False)
    assert "0 to 90" in bad.output
    session.expire_all()
    assert session.get_one(Organisation, org.id).settings.departure_notice_days == 14


def test_an_organisation_reads_the_date_from_the_attribute_it_names(
    run,
    client,
    session,
    world,
) -> None:
    org, _, _, secret = world
    hr = "urn:example:params:scim:schemas:extension:hr:2.0:User"
    slug = org.slug
    session.commit()
    run("scim", "access-end-attribute", "--org", slug, f"{hr}:lastDay")
    assert (
        "schema URN" in run("scim", "access-end-attribute", "--org", slug, "a b", ok=False).output
    )
    scim = ScimClient(client, secret)
    created = scim.post(
        "/Users",
        {
            "schemas": [USER, hr],
            "userName": "kim@example.com",
            "emails": [{"value": "kim@example.com"}],
            hr: {"lastDay": "2027-06-30T18:00:00Z"},
        },
    )
    assert created.status_code == 201, created.json
    assert created.json[hr]["lastDay"] == "2027-06-30T18:00:00.000Z"
    person = session.get_one(User, scim_user_id(session, created.json["id"]))
    assert person.access_ends_at == datetime(2027, 6, 30, 18, tzinfo=UTC)


def test_a_custom_extension_is_named_in_schemas_resource_types_and_schemas_endpoint(
    run, client, session, world
) -> None:
    """RFC 7643 §3: a resource lists every extension URN it carries, projected or not; the
    User resource type lists the extension and /Schemas describes the date read from it."""
    org, _, _, secret = world
    hr = "urn:example:params:scim:schemas:extension:hr:2.0:User"
    session.commit()
    run("scim", "access-end-attribute", "--org", org.slug, f"{hr}:lastDay")
    scim = ScimClient(client, secret)
    created = scim.post(
        "/Users",
        {
            "schemas": [USER, hr],
            "userName": "lee@example.com",
            "emails": [{"value": "lee@example.com"}],
            hr: {"lastDay": "2027-06-30T18:00:00Z"},
        },
    )
    assert created.status_code == 201, created.json
    scim_id = created.json["id"]
    for doc in (created.json, scim.get(f"/Users/{scim_id}").json):
        assert hr in doc["schemas"] and hr in doc, doc
    selected = scim.get(f"/Users/{scim_id}?attributes={hr}:lastDay").json
    assert selected[hr] == {"lastDay": "2027-06-30T18:00:00.000Z"}
    assert hr in selected["schemas"], selected
    left_out = scim.get(f"/Users/{scim_id}?excludedAttributes={hr}:lastDay").json
    assert hr not in left_out and hr not in left_out["schemas"], left_out
    (listed,) = scim.get(f"/Users?attributes={hr}").json["Resources"]
    assert hr in listed["schemas"] and listed[hr]["lastDay"], listed

    user_type = scim.get("/ResourceTypes/User").json
    assert {"schema": hr, "required": False} in user_type["schemaExtensions"]
    described = scim.get(f"/Schemas/{hr}")
    assert described.status_code == 200, described.json
    (attribute,) = described.json["attributes"]
    assert attribute["name"] == "lastDay" and attribute["type"] == "dateTime"
    assert hr in {schema["id"] for schema in scim.get("/Schemas").json["Resources"]}
