"""The admin API for invitations: problem JSON, roles, 409, 429 with Retry-After."""

from __future__ import annotations

import uuid

import time_machine
from sqlalchemy import select

from models.base import utcnow
from models.entities import Invitation
from models.enums import Role
from tests.support import factories as f


def headers(session, scene, user=None):
    token = f.admin_token(session, scene.org, user or scene.admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_create_list_get_revoke(session, scene, client):
    h = headers(session, scene)
    created = client.post(
        "/api/v1/invitations",
        json={
            "email": "Pat@Example.com",
            "role": "MANAGER",
            "teams": [{"team_id": str(scene.team.id), "role": "MANAGER"}],
            "expires_in_hours": 48,
        },
        headers=h,
    )
    assert created.status_code == 201, created.json
    body = created.json
    assert (body["email"], body["role"], body["status"]) == (
        "Pat@Example.com",
        "MANAGER",
        "pending",
    )
    assert "inv_" not in str(body)
    listed = client.get("/api/v1/invitations?status=pending&q=pat", headers=h).json
    assert [i["id"] for i in listed["items"]] == [body["id"]]
    assert client.get("/api/v1/invitations?status=accepted", headers=h).json["items"] == []
    detail = client.get(f"/api/v1/invitations/{body['id']}", headers=h).json
    assert all(d["send_number"] == 1 for d in detail["deliveries"])  # the worker may be sending
    assert detail["invited_by"]["user_id"] == str(scene.admin.id)
    revoked = client.post(f"/api/v1/invitations/{body['id']}/revoke", headers=h)
    assert revoked.json["status"] == "revoked"
    again = client.post(f"/api/v1/invitations/{body['id']}/revoke", headers=h)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"


def test_duplicate_is_409_problem(session, scene, client):
    h = headers(session, scene)
    client.post("/api/v1/invitations", json={"email": "dup@example.com"}, headers=h)
    second = client.post("/api/v1/invitations", json={"email": "DUP@example.com"}, headers=h)
    assert second.status_code == 409
    assert second.json["title"] == "conflict" and "invitation_id" in second.json
    active = client.post("/api/v1/invitations", json={"email": scene.member.email}, headers=h)
    assert active.status_code == 409 and "ACTIVE" in active.json["detail"]


def test_resend_rate_limited_with_retry_after(session, scene, client):
    h = headers(session, scene)
    with time_machine.travel(utcnow(), tick=False):  # the wait left, not the machine's speed
        created = client.post("/api/v1/invitations", json={"email": "r@example.com"}, headers=h)
        response = client.post(f"/api/v1/invitations/{created.json['id']}/resend", headers=h)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) == 60
    assert response.json["title"] == "rate_limited"


def test_resend_after_cooldown(session, scene, client):
    scene.org.settings.resend_cooldown_seconds = 0
    h = headers(session, scene)
    created = client.post("/api/v1/invitations", json={"email": "r@example.com"}, headers=h).json
    response = client.post(f"/api/v1/invitations/{created['id']}/resend", headers=h)
    assert response.status_code == 200, response.json
    assert response.json["send_count"] == 2 and response.json["resend_count"] == 1


def test_roles_on_the_api(session, scene, client):
    user_h = headers(session, scene, scene.member)
    assert (
        client.post(
            "/api/v1/invitations", json={"email": "x@example.com"}, headers=user_h
        ).status_code
        == 403
    )
    assert client.get("/api/v1/invitations", headers=user_h).status_code == 403
    manager_h = headers(session, scene, scene.manager)
    denied = client.post(
        "/api/v1/invitations",
        json={
            "email": "x@example.com",
            "role": "ORG_ADMIN",
            "teams": [{"team_id": str(scene.team.id)}],
        },
        headers=manager_h,
    )
    assert denied.status_code == 403
    ok = client.post(
        "/api/v1/invitations",
        json={"email": "x@example.com", "teams": [{"team_id": str(scene.team.id)}]},
        headers=manager_h,
    )
    assert ok.status_code == 201, ok.json
    admin_h = headers(session, scene)
    admin_sent = client.post(
        "/api/v1/invitations", json={"email": "y@example.com"}, headers=admin_h
    ).json
    visible = client.get("/api/v1/invitations", headers=manager_h).json["items"]
    assert [i["email"] for i in visible] == ["x@example.com"]
    assert (
        client.get(f"/api/v1/invitations/{admin_sent['id']}", headers=manager_h).status_code == 404
    )


def test_other_organisation_cannot_see_or_touch(session, scene, client):
    h = headers(session, scene)
    created = client.post("/api/v1/invitations", json={"email": "t@example.com"}, headers=h).json
    other = f.make_org(session)
    other_admin = f.make_user(session, other, role=Role.ORG_ADMIN)
    token = f.admin_token(session, other, other_admin)
    session.commit()
    oh = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/invitations/{created['id']}", headers=oh).status_code == 404
    assert client.post(f"/api/v1/invitations/{created['id']}/revoke", headers=oh).status_code == 404
    assert client.get("/api/v1/invitations", headers=oh).json["items"] == []


def test_bad_input_is_problem_json(session, scene, client):
    h = headers(session, scene)
    cases = [
        {"email": "not-an-email"},
        {"email": "a@example.com", "role": "SUPER_ADMIN"},
        {"email": "a@example.com", "role": "KING"},
        {"email": "a@example.com", "expires_in_hours": 0},
        {"email": "a@example.com", "expires_in_hours": 721},
        {"email": "a@example.com", "teams": [{"team_id": "nope"}]},
        {"email": "a@example.com", "unknown": 1},
        {"email": 5},
    ]
    for case in cases:
        response = client.post("/api/v1/invitations", json=case, headers=h)
        assert response.status_code == 400, (case, response.json)
        assert response.mimetype == "application/problem+json"
    missing_team = client.post(
        "/api/v1/invitations",
        json={"email": "a@example.com", "teams": [{"team_id": str(uuid.uuid4())}]},
        headers=h,
    )
    assert missing_team.status_code == 404
    raw = client.post(
        "/api/v1/invitations", data=b"\xff\xfe", headers={**h, "Content-Type": "application/json"}
    )
    assert raw.status_code == 400
    assert client.get("/api/v1/invitations?status=bogus", headers=h).status_code == 400
    assert client.get(f"/api/v1/invitations/{uuid.uuid4()}", headers=h).status_code == 404
    assert (
        client.post("/api/v1/invitations/refresh", json={"ids": ["x"]}, headers=h).status_code
        == 400
    )
    assert session.scalars(select(Invitation)).all() == []


def test_refresh_endpoint(session, scene, client):
    h = headers(session, scene)
    created = client.post("/api/v1/invitations", json={"email": "a@example.com"}, headers=h).json
    response = client.post(
        "/api/v1/invitations/refresh", json={"ids": [created["id"], str(uuid.uuid4())]}, headers=h
    )
    assert response.status_code == 200
    assert [(i["id"], i["status"]) for i in response.json["items"]] == [(created["id"], "pending")]


def test_openapi_documents_invitations(client):
    document = client.get("/api/v1/openapi.json").json
    assert {"/invitations", "/invitations/{invitation_id}/resend", "/invitations/refresh"} <= set(
        document["paths"]
    )
    assert "CreateInvitation" in document["components"]["schemas"]


def test_a_team_listed_twice_with_different_roles_is_400_naming_it(session, scene, client):
    """Which role was meant cannot be known; keeping the last entry silently could invite a
    manager as a member (or the reverse). The problem names the team and both roles."""
    h = headers(session, scene)
    team = str(scene.team.id)
    response = client.post(
        "/api/v1/invitations",
        json={
            "email": "twice@example.com",
            "teams": [{"team_id": team, "role": "MANAGER"}, {"team_id": team, "role": "MEMBER"}],
        },
        headers=h,
    )
    assert response.status_code == 400, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == "teams"
    assert team in response.json["detail"]
    assert "MANAGER" in response.json["detail"] and "MEMBER" in response.json["detail"]
    assert session.scalars(select(Invitation)).all() == []


def test_a_team_listed_twice_with_the_same_role_is_one_entry(session, scene, client):
    """The same team and role twice says one thing: it is kept once (a set, as SCIM members)."""
    h = headers(session, scene)
    team = str(scene.team.id)
    entry = {"team_id": team, "role": "MEMBER"}
    response = client.post(
        "/api/v1/invitations",
        json={"email": "twice@example.com", "teams": [entry, {"team_id": team.upper()}]},
        headers=h,
    )
    assert response.status_code == 201, response.json
    assert response.json["teams"] == [entry]
