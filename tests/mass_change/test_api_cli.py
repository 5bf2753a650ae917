"""Thresholds and holds through the admin API and the CLI: defaults, changes audited, and
bad input answered with a clear error that changes nothing."""

from __future__ import annotations

import uuid

import pytest

from models.enums import ChangeStatus, Role, UserStatus
from tests.admin_api.conftest import assert_problem, database_state
from tests.mass_change.conftest import audit_actions, changes, statuses
from tests.scim.payloads import okta_deactivate
from tests.support import factories as f

SETTINGS = "/api/v1/mass-change/settings"


def test_an_organisation_without_settings_gets_the_defaults(client, session):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    token = f.admin_token(session, org, admin)
    session.commit()

    shown = client.get(SETTINGS, headers={"Authorization": f"Bearer {token}"})

    assert shown.status_code == 200
    assert shown.json == {
        "enabled": True,
        "threshold_count": 10,
        "threshold_percent": 0,
        "window_minutes": 10,
        "holding": [],
    }


def test_settings_change_is_audited_and_shown_with_the_holding_sources(
    client, gated, scim, sessions
):
    changed = client.put(
        SETTINGS,
        json={"threshold_count": 1, "window_minutes": 30},
        headers=gated.admin_headers,
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["threshold_count"] == 1 and changed.json["window_minutes"] == 30
    assert audit_actions(sessions)[-1] == "mass_change.settings_changed"

    ids = gated.scim_users(scim, "a@gated.test", "b@gated.test")
    for scim_id in ids:
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    holding = client.get(SETTINGS, headers=gated.admin_headers).json["holding"]
    assert [gate["source"] for gate in holding] == ["scim"]


def test_a_percentage_of_the_active_people_trips_the_gate(client, gated, scim, sessions):
    client.put(
        SETTINGS,
        json={"threshold_count": 0, "threshold_percent": 25},
        headers=gated.admin_headers,
    )
    emails = [f"p{n}@gated.test" for n in range(8)]  # nine active people with the admin
    ids = gated.scim_users(scim, *emails)
    for scim_id in ids[:4]:
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    # 25% of 9 is 2.25: the third deactivation is over it.
    assert statuses(sessions, emails[:4]) == [UserStatus.REVOKED] * 2 + [UserStatus.ACTIVE] * 2


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"threshold_count": -1}, "threshold_count must be 0"),
        ({"threshold_percent": 101}, "threshold_percent must be between"),
        ({"window_minutes": 0}, "window_minutes must be between"),
        ({"threshold_count": 0, "threshold_percent": 0}, "needs threshold_count or"),
        ({"threshold_count": "5"}, "does not match the schema"),
        ({"limit": 5}, "does not match the schema"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_settings_are_refused_as_problem_json_and_change_nothing(
    client, gated, sessions, body, detail
):
    before = database_state(sessions)

    response = client.put(SETTINGS, json=body, headers=gated.admin_headers)

    assert_problem(response, 400, detail=detail)
    assert database_state(sessions) == before


def test_unknown_holds_and_batches_are_404_and_bad_filters_400(client, gated, sessions):
    before = database_state(sessions)
    unknown = uuid.uuid4()
    for path in (
        f"/api/v1/mass-change/holds/{unknown}/approve",
        f"/api/v1/mass-change/holds/{unknown}/discard",
        f"/api/v1/mass-change/batches/{unknown}/approve",
        f"/api/v1/mass-change/batches/{unknown}/discard",
    ):
        assert_problem(client.post(path, headers=gated.admin_headers), 404, detail="not found")
    assert_problem(
        client.get("/api/v1/mass-change/holds?status=bogus", headers=gated.admin_headers), 400
    )
    assert_problem(
        client.post("/api/v1/mass-change/holds/not-a-uuid/approve", headers=gated.admin_headers),
        404,
    )
    assert database_state(sessions) == before


def test_only_organisation_admins_see_or_decide(client, gated, session, sessions):
    person = f.make_user(session, gated.org)
    token = f.admin_token(session, gated.org, person)
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    before = database_state(sessions)

    assert_problem(client.get(SETTINGS, headers=headers), 403)
    assert_problem(client.put(SETTINGS, json={"threshold_count": 0}, headers=headers), 403)
    assert_problem(client.get("/api/v1/mass-change/holds", headers=headers), 403)
    assert_problem(client.get(SETTINGS), 401)
    assert database_state(sessions) == before


def test_another_organisations_hold_is_not_found(client, gated, scim, session, sessions):
    ids = gated.scim_users(scim, *[f"p{n}@gated.test" for n in range(4)])
    for scim_id in ids:
        scim.patch(f"/Users/{scim_id}", okta_deactivate())
    (held,) = changes(sessions, ChangeStatus.HELD)
    other = f.make_org(session)
    other_admin = f.make_user(session, other, role=Role.ORG_ADMIN)
    token = f.admin_token(session, other, other_admin)
    session.commit()

    response = client.post(
        f"/api/v1/mass-change/holds/{held.id}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert_problem(response, 404)
    assert [h.id for h in changes(sessions, ChangeStatus.HELD)] == [held.id]


def test_cli_settings_show_change_and_refuse_bad_values(run, run_json, gated, sessions):
    shown = run_json("holds", "settings", "--org", gated.org.slug)
    assert shown["threshold_count"] == 3 and shown["holding"] == []
    changed = run_json(
        "holds", "settings", "--org", gated.org.slug, "--count", "7", "--percent", "5"
    )
    assert (changed["threshold_count"], changed["threshold_percent"]) == (7, 5)
    before = database_state(sessions)

    for bad in (["--count", "-1"], ["--percent", "200"], ["--window", "0"]):
        refused = run("holds", "settings", "--org", gated.org.slug, *bad, ok=False)
        assert "must be" in refused.output

    assert database_state(sessions) == before


def test_cli_decisions_refuse_unknown_or_missing_holds(run, gated, sessions):
    before = database_state(sessions)

    unknown = run("holds", "approve", "--org", gated.org.slug, str(uuid.uuid4()), ok=False)
    assert "not found" in unknown.output
    bad_id = run("holds", "discard", "--org", gated.org.slug, "--batch", "nope", ok=False)
    assert "is not a batch id" in bad_id.output
    neither = run("holds", "approve", "--org", gated.org.slug, ok=False)
    assert "hold ids or one --batch" in neither.output
    no_org = run("holds", "list", "--org", "no-such-org", ok=False)
    assert "no-such-org" in no_org.output or "not found" in no_org.output

    assert database_state(sessions) == before


def test_a_disabled_gate_counts_and_holds_nothing(client, gated, scim, sessions):
    client.put(SETTINGS, json={"enabled": False}, headers=gated.admin_headers)
    emails = [f"p{n}@gated.test" for n in range(6)]
    ids = gated.scim_users(scim, *emails)

    for scim_id in ids:
        assert scim.patch(f"/Users/{scim_id}", okta_deactivate()).status_code == 200

    assert statuses(sessions, emails) == [UserStatus.REVOKED] * 6
    assert changes(sessions, ChangeStatus.APPLIED) == changes(sessions, ChangeStatus.HELD) == []
