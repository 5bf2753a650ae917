"""GET /api/v1/audit-events: admins only, tenant-scoped, filtered, keyset-paginated."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

from models.actor import Actor
from models.audit import record
from models.entities import AuditEvent
from models.enums import Source
from tests.admin_api.conftest import assert_problem

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(session, org_id, *, minutes, action="user.updated", source=Source.ADMIN, **fields):
    event = record(
        session,
        actor=Actor(source, fields.pop("actor", "alice")),
        organisation_id=org_id,
        action=action,
        target_type=fields.pop("target_type", "user"),
        target_id=fields.pop("target_id", uuid.uuid4()),
        before={"n": minutes},
        after={"n": minutes + 1},
    )
    event.occurred_at = T0 + timedelta(minutes=minutes)
    return event


def test_only_admins_read_it_and_only_their_own_organisation(client, session, world) -> None:
    _event(session, world.org_a, minutes=1, action="a.done")
    _event(session, world.org_b, minutes=2, action="b.done")
    session.commit()
    assert_problem(client.get("/api/v1/audit-events"), 401)
    for who in ("manager", "user"):
        assert_problem(client.get("/api/v1/audit-events", headers=world.auth(who)), 403)
    mine = client.get("/api/v1/audit-events?action=a.done", headers=world.auth("admin"))
    assert [e["action"] for e in mine.get_json()["items"]] == ["a.done"]
    theirs = client.get("/api/v1/audit-events?action=b.done", headers=world.auth("admin"))
    assert theirs.get_json()["items"] == []


def test_each_event_says_who_what_source_before_after_and_request(client, session, world) -> None:
    response = client.patch(
        f"/api/v1/users/{world.users['colleague']}",
        json={"name": "Renamed Colleague"},
        headers={**world.auth("admin"), "X-Request-Id": "trace-0001-abc"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "trace-0001-abc"
    listing = client.get(
        f"/api/v1/audit-events?action=user.updated&user_id={world.users['colleague']}",
        headers=world.auth("admin"),
    ).get_json()
    (event,) = listing["items"]
    assert event["source"] == "admin"
    assert event["actor_user_id"] == str(world.users["admin"])
    assert event["actor"]
    assert event["action"] == "user.updated"
    assert event["target_type"] == "user"
    assert event["after"]["name"] == "Renamed Colleague"
    assert event["before"]["name"] != "Renamed Colleague"
    assert event["request_id"] == "trace-0001-abc"


def test_a_hostile_request_id_is_replaced_not_stored(client, world) -> None:
    response = client.get(
        "/api/v1/audit-events", headers={**world.auth("admin"), "X-Request-Id": "<script>x"}
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"].startswith("req_")


def test_filters_compose(client, session, world) -> None:
    team_id, key_id = uuid.uuid4(), uuid.uuid4()
    _event(session, world.org_a, minutes=0, action="user.created", source=Source.SCIM)
    _event(session, world.org_a, minutes=10, action="user.revoked", source=Source.LDAP)
    _event(
        session,
        world.org_a,
        minutes=20,
        action="team.deleted",
        target_type="team",
        target_id=team_id,
        actor="bob",
    )
    _event(
        session,
        world.org_a,
        minutes=30,
        action="key.revoked",
        target_type="api_key",
        target_id=key_id,
        source=Source.SCHEDULE,
    )
    session.commit()

    def actions(query: str) -> list[str]:
        window = "&until=2026-11-02T00:00:00Z" if "until" not in query else ""
        response = client.get(f"/api/v1/audit-events?{query}{window}", headers=world.auth("admin"))
        assert response.status_code == 200, response.get_json()
        return [e["action"] for e in response.get_json()["items"]]

    assert actions("source=scim") == ["user.created"]
    assert actions("action=user.*") == ["user.revoked", "user.created"]
    assert actions(f"team_id={team_id}") == ["team.deleted"]
    assert actions(f"key_id={key_id}") == ["key.revoked"]
    assert actions("actor=bob") == ["team.deleted"]
    since, until = (T0 + timedelta(minutes=10)).isoformat(), (T0 + timedelta(minutes=30))
    assert actions(f"since={since}&until={until.isoformat()}".replace("+", "%2B")) == [
        "team.deleted",
        "user.revoked",
    ]
    assert actions("since=2026-11-01T12:05:00Z&source=ldap") == ["user.revoked"]


def test_pages_walk_every_event_once_even_while_new_ones_arrive(client, session, world) -> None:
    for minute in range(7):
        _event(session, world.org_a, minutes=minute % 3)  # ties in time: the id breaks them
    session.commit()
    expected = [
        str(e.id)
        for e in session.query(AuditEvent)
        .filter(AuditEvent.organisation_id == world.org_a)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    ]
    session.rollback()  # SQLite: release the write lock before the app reads
    first = client.get("/api/v1/audit-events?limit=3", headers=world.auth("admin")).get_json()
    late = _event(session, world.org_a, minutes=0)
    late.occurred_at = datetime.now(UTC) + timedelta(hours=1)  # newer than the pages walked
    session.commit()
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = client.get(
            f"/api/v1/audit-events?limit=3&cursor={cursor}", headers=world.auth("admin")
        ).get_json()
        rest += page["items"]
        cursor = page["next_cursor"]
    walked = [e["id"] for e in first["items"] + rest]
    assert walked == expected


def _cursor(moment: str) -> str:
    raw = f"{moment}|{uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_bad_parameters_are_clear_400s(client, world, unchanged) -> None:
    unchanged()
    for query, field in (
        ("cursor=not-a-cursor", "cursor"),
        ("since=yesterday", "since"),
        ("since=9999-12-31T23:59:59-12:00", "since"),
        ("until=0001-01-01T00:00:00%2B14:00", "until"),
        (f"cursor={_cursor('9999-12-31T23:59:59-12:00')}", "cursor"),
        ("source=nobody", "source"),
        ("limit=0", "limit"),
        ("user_id=42", "user_id"),
        ("target_id=abc", "target_id"),
    ):
        body = assert_problem(
            client.get(f"/api/v1/audit-events?{query}", headers=world.auth("admin")), 400
        )
        assert field in body["detail"], body
    assert_problem(
        client.get(
            f"/api/v1/audit-events?user_id={uuid.uuid4()}&team_id={uuid.uuid4()}",
            headers=world.auth("admin"),
        ),
        400,
    )
    unchanged()


def test_user_and_team_filters_find_the_directory_batch_events_that_list_them(
    client, session, world
) -> None:
    """A directory import audits its people and their first memberships in batches (target
    types `user_batch` and `membership_batch`): a user's or a team's events include those
    batches that list them, and no batch that does not."""
    colleague, outsider = str(world.users["colleague"]), str(world.users["outsider"])
    alpha, beta = str(world.alpha), str(world.beta)
    _event(
        session,
        world.org_a,
        minutes=1,
        action="user.created",
        target_type="user_batch",
        target_id=uuid.uuid4(),
        source=Source.LDAP,
    ).after = {"count": 1, "users": [{"id": colleague, "name": "Colleague"}]}
    for minutes, team, member in ((2, alpha, colleague), (3, beta, outsider)):
        _event(
            session,
            world.org_a,
            minutes=minutes,
            action="team.member_added",
            target_type="membership_batch",
            target_id=team,
            source=Source.LDAP,
        ).after = {"team_id": team, "count": 1, "members": [{"user_id": member}]}
    _event(session, world.org_a, minutes=4, action="user.updated", target_id=colleague)
    _event(
        session, world.org_a, minutes=5, action="team.renamed", target_type="team", target_id=alpha
    )
    session.commit()

    def found(query: str) -> list[tuple[str, str]]:
        response = client.get(
            f"/api/v1/audit-events?{query}&until=2026-11-02T00:00:00Z", headers=world.auth("admin")
        )
        assert response.status_code == 200, response.get_json()
        return [(e["action"], e["target_type"]) for e in response.get_json()["items"]]

    assert found(f"user_id={colleague}") == [
        ("user.updated", "user"),
        ("team.member_added", "membership_batch"),
        ("user.created", "user_batch"),
    ]
    assert found(f"user_id={outsider}") == [("team.member_added", "membership_batch")]
    assert found(f"team_id={alpha}") == [
        ("team.renamed", "team"),
        ("team.member_added", "membership_batch"),
    ]
    assert found(f"user_id={uuid.uuid4()}") == []
