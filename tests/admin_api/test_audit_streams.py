"""The audit streams admin API: admins only, outbound URL checks, secrets shown once, audited."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import AuditEvent, AuditStream
from tests.admin_api.conftest import assert_problem


def test_an_admin_adds_lists_pauses_and_removes_a_stream(client, session, world) -> None:
    created = client.post(
        "/api/v1/audit-streams",
        json={
            "name": "splunk",
            "preset": "splunk",
            "target": "http://127.0.0.1:8088/services/collector/event",
            "splunk_token": "hec-1",
            "batch_size": 100,
        },
        headers=world.auth("admin"),
    )
    assert created.status_code == 201, created.get_json()
    stream = created.get_json()
    assert stream["signing_secret"].startswith("whsec_")
    assert "hec-1" not in created.get_data(as_text=True).replace(stream["signing_secret"], "")
    listed = client.get("/api/v1/audit-streams", headers=world.auth("admin")).get_json()
    assert [s["id"] for s in listed["items"]] == [stream["id"]]
    assert "signing_secret" not in listed["items"][0]
    paused = client.patch(
        f"/api/v1/audit-streams/{stream['id']}",
        json={"enabled": False},
        headers=world.auth("admin"),
    )
    assert paused.get_json()["enabled"] is False
    assert (
        client.delete(
            f"/api/v1/audit-streams/{stream['id']}", headers=world.auth("admin")
        ).status_code
        == 204
    )
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.target_type == "audit_stream")
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    assert actions == ["audit_stream.created", "audit_stream.updated", "audit_stream.deleted"]


def test_bad_streams_are_refused_and_change_nothing(client, session, world, unchanged) -> None:
    unchanged()
    for body, field in (
        ({"name": "x", "preset": "generic", "target": "ftp://siem.example/x"}, "target"),
        ({"name": "x", "preset": "generic", "target": "http://10.0.0.5/x"}, "target"),
        ({"name": "x", "preset": "splunk", "target": "http://127.0.0.1:1/x"}, "splunk_token"),
        ({"name": "x", "preset": "syslog", "target": "http://127.0.0.1:1/x"}, "preset"),
        (
            {"name": "x", "preset": "generic", "target": "http://127.0.0.1:1/x", "batch_size": 0},
            "batch_size",
        ),
    ):
        response = client.post("/api/v1/audit-streams", json=body, headers=world.auth("admin"))
        problem = assert_problem(response, 400)
        assert field in str(problem), problem
    for who in ("manager", "user"):
        assert_problem(client.get("/api/v1/audit-streams", headers=world.auth(who)), 403)
    unchanged()
    assert session.scalars(select(AuditStream)).all() == []


def test_another_organisations_stream_is_not_found(client, world) -> None:
    created = client.post(
        "/api/v1/audit-streams",
        json={"name": "s", "preset": "generic", "target": "http://127.0.0.1:1/x"},
        headers=world.auth("b_admin"),
    ).get_json()
    assert_problem(
        client.get(f"/api/v1/audit-streams/{created['id']}", headers=world.auth("admin")), 404
    )
