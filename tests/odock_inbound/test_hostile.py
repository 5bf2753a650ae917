"""Hostile and broken input: problem JSON, never a 500, and nothing changed."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from models.actions import tokens
from models.entities import Budget, Organisation, User
from models.enums import Role, TokenScope
from tests.odock_inbound.conftest import counts, key_body
from tests.support import factories as f

KEY_ID = uuid.UUID("0193a1d2-0000-7000-8000-000000000001")


def broken_keys(owner) -> list[tuple[str, object]]:
    good = key_body(owner, version=1)
    return [
        ("not JSON", b"{nope"),
        ("not UTF-8", b"\xff\xfe{}"),
        ("a list", b"[1, 2]"),
        ("nested too deep", b"[" * 100 + b"]" * 100),
        ("version as text", {**good, "version": "17"}),
        ("negative version", {**good, "version": -1}),
        ("version beyond 64 bits", {**good, "version": 2**64}),
        ("a 5000-digit number", b'{"version": ' + b"9" * 5000 + b"}"),
        ("infinity", json.dumps({**good, "version": 1}).replace("1}", "1e999}").encode()),
        ("revoked as text", {**good, "revoked": "yes"}),
        ("name as number", {**good, "name": 5}),
        ("unknown type", {**good, "type": "ROOT"}),
        ("unknown field", {**good, "secret_value": "sk-live-123"}),
        ("naive time", {**good, "created_at": "2026-12-01T10:00:00"}),
        ("owner not a uuid", {**good, "owner_user_id": "'; DROP TABLE users; --"}),
        ("a USER key without owner", {**good, "owner_user_id": None}),
        ("name too long", {**good, "name": "x" * 201}),
        # Python kept the last; a proxy or filter in front may read the first.
        ("a name given twice", b'{"revoked": true, ' + json.dumps(good).encode()[1:]),
    ]


def test_broken_keys_are_refused_with_problem_json_and_nothing_changes(bridged, session):
    before = counts(session)
    for what, body in broken_keys(bridged.owner):
        response = bridged.put("keys", KEY_ID, body)
        assert response.status_code == 400, (what, response.get_json())
        assert response.mimetype == "application/problem+json", what
    assert counts(session) == before


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_key_said_to_be_another_type_than_json_is_415(bridged, session, content_type):
    """Read as JSON whatever its Content-Type said (written, 200), where SCIM answered 415:
    the rule is the shared guard's now (webhooks.body.check_json_type)."""
    before = counts(session)
    body = json.dumps(key_body(bridged.owner, version=1)).encode()
    response = bridged.put("keys", KEY_ID, body, **{"Content-Type": content_type})
    assert response.status_code == 415, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert counts(session) == before


@pytest.mark.parametrize(
    "budget",
    [
        {"amount": "NaN"},
        {"amount": "Infinity"},
        {"amount": "1e400"},
        {"amount": "123456789012345.1"},
        {"currency": "dollars"},
        {"owner_type": "GALAXY"},
        {"window": ""},
    ],
)
def test_broken_budgets_are_refused(bridged, session, budget):
    good = {
        "owner_type": "USER",
        "owner_id": str(bridged.owner.id),
        "name": "monthly",
        "amount": "100",
        "window": "monthly",
        "version": 1,
    }
    before = counts(session)
    response = bridged.put("budgets", uuid.uuid4(), {**good, **budget})
    assert response.status_code == 400, response.get_json()
    assert counts(session) == before


def test_nan_as_a_json_constant_is_refused(bridged, session):
    before = counts(session)
    body = b'{"records": [{"id": "r1", "occurred_at": "2026-12-04T10:00:00Z", "cost": NaN}]}'
    response = bridged.usage(body)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert counts(session) == before


def test_broken_usage_batches_are_refused_whole(bridged, session):
    good = {"id": "r1", "occurred_at": "2026-12-04T10:00:00Z"}
    before = counts(session)
    for body in (
        {"records": []},
        {"records": [good] * 5001},
        {"records": [good, {**good, "id": "r2", "input_tokens": 1.5}]},
        {"records": [good, {**good, "id": "x" * 129}]},
        {"records": [good, {**good, "id": "r3", "cost": "-1"}]},
        {"records": [good, {**good, "id": "r4", "requests": 2**63}]},
        {"records": "all of them"},
    ):
        response = bridged.usage(body)
        assert response.status_code == 400, response.get_json()
        assert response.mimetype == "application/problem+json"
    assert counts(session) == before


def test_usage_naming_another_organisations_person_is_refused(bridged, session):
    stranger = f.make_user(session, f.make_org(session))
    session.commit()
    stranger_id = stranger.id
    before = counts(session)
    response = bridged.usage(
        {
            "records": [
                {"id": "r1", "occurred_at": "2026-12-04T10:00:00Z", "user_id": str(stranger_id)}
            ]
        }
    )
    assert response.status_code == 422
    assert counts(session) == before


def test_a_body_over_the_limit_is_refused(bridged, session):
    before = counts(session)
    huge = json.dumps(key_body(bridged.owner, masked_value="x" * 100_000))
    response = bridged.put("keys", KEY_ID, huge)
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert counts(session) == before


def test_only_a_live_token_of_scope_odock_is_accepted(bridged, session):
    org = session.get_one(Organisation, bridged.org.id)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    admin_token = f.admin_token(session, org, admin)
    scim_token = f.scim_token(session, org)
    revoked = tokens.create_token(session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP)
    tokens.revoke_token(session, token=revoked.token, actor=f.SETUP)
    session.commit()
    before = counts(session)
    body = json.dumps(key_body(bridged.owner))
    for secret in (admin_token, scim_token, revoked.secret, "", "odk_odock_guess"):
        response = bridged.client.put(
            f"/odock/v1/keys/{KEY_ID}",
            data=body,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert counts(session) == before


def test_bad_paths_and_versions_are_problems(bridged, session):
    before = counts(session)
    not_an_id = bridged.put("keys", "not-a-uuid", key_body(bridged.owner))
    unknown_collection = bridged.put("teams", KEY_ID, key_body(bridged.owner))
    for version in ("", "abc", "-1", "1.5", "9" * 30):
        response = bridged.delete("keys", KEY_ID, version)
        assert response.status_code == 400, version
        assert response.mimetype == "application/problem+json"
    assert not_an_id.status_code == 404 and unknown_collection.status_code == 404
    assert not_an_id.mimetype == "application/problem+json"
    assert counts(session) == before


def test_an_owner_email_and_id_together_are_refused(bridged, session):
    user = session.get_one(User, bridged.owner.id)
    body = key_body(bridged.owner, owner_email=user.email)
    session.rollback()
    response = bridged.put("keys", KEY_ID, body)
    assert response.status_code == 400


# Aware times whose UTC form leaves the calendar: year 1 east of UTC, year 9999 west of it.
OFF_THE_CALENDAR = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("when", OFF_THE_CALENDAR)
def test_a_time_beyond_what_utc_can_hold_is_refused_naming_the_field(bridged, session, when):
    """Such a time passed the check and failed when stored: a 500 on the push."""
    before = counts(session)
    key = bridged.put("keys", KEY_ID, {**key_body(bridged.owner, version=1), "expires_at": when})
    usage = bridged.usage({"records": [{"id": "r1", "occurred_at": when}]})
    for response, field in ((key, "expires_at"), (usage, "occurred_at")):
        assert response.status_code == 400, response.get_json()
        assert response.mimetype == "application/problem+json"
        assert field in json.dumps(response.get_json())
    assert counts(session) == before


# Numbers given as text are ASCII digits, as query parameters are: Python's Decimal read
# these as numbers ("\uff15", fullwidth, as 5, " 5" as 5, "1_0" as 10, "1e2" as 100).
NOT_PLAIN_NUMBERS = ["\uff15", "\u0663", " 5", "5 ", "1_0", "1e2", "", "."]


@pytest.mark.parametrize("amount", NOT_PLAIN_NUMBERS)
def test_a_budget_amount_as_text_is_ascii_digits_only(bridged, session, amount):
    good = {
        "owner_type": "USER",
        "owner_id": str(bridged.owner.id),
        "name": "monthly",
        "amount": "100",
        "version": 1,
    }
    before = counts(session)
    response = bridged.put("budgets", uuid.uuid4(), {**good, "amount": amount})
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert "amount" in json.dumps(response.get_json())
    assert counts(session) == before


@pytest.mark.parametrize("text", ["100", "+100", "100.", "99.5", ".5", "0"])
def test_a_budget_amount_in_plain_ascii_text_is_read(bridged, session, text):
    budget_id = uuid.uuid4()
    body = {"owner_type": "ORG", "name": "monthly", "amount": text, "version": 1}
    response = bridged.put("budgets", budget_id, body)
    assert response.status_code == 200, response.get_json()
    assert session.get_one(Budget, budget_id).amount == Decimal(text)


def test_usage_numbers_as_text_are_ascii_digits_only(bridged, session):
    good = {"id": "r1", "occurred_at": "2026-12-04T10:00:00Z"}
    before = counts(session)
    for field, text in [
        *(("cost", number) for number in NOT_PLAIN_NUMBERS),
        ("input_tokens", "\uff15"),
        ("requests", "5"),
    ]:
        response = bridged.usage({"records": [{**good, field: text}]})
        assert response.status_code == 400, (field, text, response.get_json())
        assert response.mimetype == "application/problem+json"
        assert field in json.dumps(response.get_json()), (field, text)
    assert counts(session) == before
    response = bridged.usage({"records": [{**good, "cost": "0.25"}]})
    assert response.status_code == 200, response.get_json()


def test_a_quota_limit_as_text_is_refused(bridged, session):
    body = {"owner_type": "ORG", "name": "daily", "limit": "\uff15", "version": 1}
    before = counts(session)
    response = bridged.put("quotas", uuid.uuid4(), body)
    assert response.status_code == 400, response.get_json()
    assert "limit" in json.dumps(response.get_json())
    assert counts(session) == before
