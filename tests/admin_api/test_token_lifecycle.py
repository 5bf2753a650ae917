"""Token lifecycle through the admin API: list (never a secret), create (the secret once,
with an optional expiry), revoke (the caller's own only on purpose); expired and revoked
tokens refused on every API; last use written at most once a minute; all of it audited."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from models.actions import tokens
from models.base import utcnow
from models.entities import ApiToken, AuditEvent
from models.enums import TokenScope
from tests.admin_api.conftest import World, assert_problem
from tests.scim.conftest import ScimClient
from tests.support import factories as f
from tests.support.sql_events import listening
from tests.support.wait import wait_until

API = "/api/v1/tokens"


def _create(client, world: World, **body) -> dict:
    response = client.post(API, json=body, headers=world.auth("admin"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _token_id(session, secret: str) -> uuid.UUID:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return session.scalars(select(ApiToken.id).where(ApiToken.token_hash == digest)).one()


def _audit(session, action: str, target: uuid.UUID | str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.target_id == str(target)
            )
        )
    )


def test_create_shows_the_secret_once_with_a_prefix_per_scope(client, session, world) -> None:
    scim = _create(client, world, scope="scim", name="Okta", expires_in_days=90)
    admin = _create(client, world, scope="admin", name="automation")
    assert scim["token"].startswith("odk_scim_") and admin["token"].startswith("odk_admin_")
    assert scim["token"].startswith(scim["prefix"]) and scim["status"] == "active"
    assert admin["user_id"] == str(world.users["admin"])  # acts as the caller
    assert scim["user_id"] is None and scim["last_used_at"] is None
    expires = scim["expires_at"]
    assert expires and str(utcnow() + timedelta(days=89)) < expires.replace("T", " ")
    assert ScimClient(client, scim["token"]).get("/Users").status_code == 200
    headers = {"Authorization": f"Bearer {admin['token']}"}
    assert client.get("/api/v1/me", headers=headers).get_json()["email"] == "admin@acme.test"
    created = _audit(session, "token.created", scim["id"])
    assert len(created) == 1 and created[0].actor == "admin@acme.test"
    assert created[0].after["expires_at"] and created[0].after["scope"] == "scim"


def test_the_list_never_shows_a_secret_or_its_hash(client, session, world) -> None:
    made = _create(client, world, scope="scim", name="Entra")
    response = client.get(API, headers=world.auth("admin"))
    assert response.status_code == 200
    items, text = response.get_json()["items"], response.get_data(as_text=True)
    hashes = set(session.scalars(select(ApiToken.token_hash)))
    for secret in [made["token"], *world.tokens.values()]:
        assert secret not in text
    assert not any(digest in text for digest in hashes)
    assert all("token" not in item and "token_hash" not in item for item in items)
    # The organisation's tokens only: its admin, manager and user tokens and the new one.
    assert len(items) == 4 and {i["scope"] for i in items} == {"admin", "scim"}
    entra = next(i for i in items if i["name"] == "Entra")
    assert entra["id"] == made["id"] and entra["status"] == "active"


def test_the_list_filters_by_status(client, session, world) -> None:
    made = _create(client, world, scope="scim")
    assert client.delete(f"{API}/{made['id']}", headers=world.auth("admin")).status_code == 204
    revoked = client.get(f"{API}?status=revoked", headers=world.auth("admin")).get_json()
    assert [i["id"] for i in revoked["items"]] == [made["id"]]
    assert_problem(client.get(f"{API}?status=gone", headers=world.auth("admin")), 400)


def test_only_organisation_admins_manage_tokens(client, session, world, unchanged) -> None:
    target = _token_id(session, world.tokens["user"])
    session.commit()
    unchanged()
    for who in ("manager", "user"):
        assert_problem(client.get(API, headers=world.auth(who)), 403)
        assert_problem(client.post(API, json={"scope": "scim"}, headers=world.auth(who)), 403)
        assert_problem(client.delete(f"{API}/{target}", headers=world.auth(who)), 403)
    unchanged()


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "scim", "expires_in_days": 0},
        {"scope": "scim", "expires_in_days": 99999},
        {"scope": "scim", "expires_in_days": "90"},
        {"scope": "scim", "expires_in_days": 1.5},
        {"scope": "scim", "expires_at": "tomorrow"},
        {"scope": "scim", "expires_at": "2020-01-01T00:00:00Z"},
        {"scope": "scim", "expires_at": "2030-01-01T00:00:00"},
        {"scope": "scim", "expires_at": "2999-01-01T00:00:00Z"},
        {"scope": "scim", "expires_at": "2030-01-01T00:00:00Z", "expires_in_days": 3},
        {"scope": "root"},
        {"scope": "scim", "secret": "mine"},
        {},
    ],
    ids=[
        "zero-days",
        "too-many-days",
        "days-as-text",
        "fractional-days",
        "not-a-date",
        "in-the-past",
        "no-time-zone",
        "beyond-ten-years",
        "both",
        "unknown-scope",
        "unknown-field",
        "no-scope",
    ],
)
def test_a_bad_create_body_is_a_problem_and_changes_nothing(client, world, unchanged, body) -> None:
    unchanged()
    response = client.post(API, json=body, headers=world.auth("admin"))
    problem = assert_problem(response, 400)
    assert "Traceback" not in str(problem)
    unchanged()


def test_revoking_an_unknown_token_is_404(client, session, world, unchanged) -> None:
    other_org = session.scalars(
        select(ApiToken.id).where(ApiToken.organisation_id == world.org_b)
    ).first()
    session.commit()
    unchanged()
    for token_id in (uuid.uuid4(), other_org):
        assert_problem(
            client.delete(f"{API}/{token_id}", headers=world.auth("admin")), 404, detail="token"
        )
    assert_problem(client.delete(f"{API}/not-a-uuid", headers=world.auth("admin")), 404)
    unchanged()


def test_a_revoked_token_is_refused_at_once_and_the_revocation_audited(
    client, session, world
) -> None:
    manager_token = _token_id(session, world.tokens["manager"])
    session.commit()
    assert client.get("/api/v1/me", headers=world.auth("manager")).status_code == 200
    response = client.delete(f"{API}/{manager_token}", headers=world.auth("admin"))
    assert response.status_code == 204
    assert_problem(client.get("/api/v1/me", headers=world.auth("manager")), 401)
    # Revoking again changes nothing and says so with the same answer.
    assert client.delete(f"{API}/{manager_token}", headers=world.auth("admin")).status_code == 204
    events = _audit(session, "token.revoked", manager_token)
    assert len(events) == 1 and events[0].actor == "admin@acme.test"
    session.commit()
    listed = client.get(API, headers=world.auth("admin")).get_json()["items"]
    assert next(i for i in listed if i["id"] == str(manager_token))["status"] == "revoked"


def test_revoking_the_token_in_use_needs_revoke_own(client, session, world, unchanged) -> None:
    own = _token_id(session, world.tokens["admin"])
    session.commit()
    unchanged()
    refused = client.delete(f"{API}/{own}", headers=world.auth("admin"))
    assert_problem(refused, 409, detail="revoke_own=true")
    assert_problem(client.delete(f"{API}/{own}?revoke_own=yes", headers=world.auth("admin")), 400)
    unchanged()
    response = client.delete(f"{API}/{own}?revoke_own=true", headers=world.auth("admin"))
    assert response.status_code == 204
    assert_problem(client.get(API, headers=world.auth("admin")), 401)


def test_an_expired_token_is_refused_on_the_admin_api_and_on_scim(client, world) -> None:
    scim = _create(client, world, scope="scim", expires_in_days=1)
    admin = _create(client, world, scope="admin", expires_in_days=1)
    scim_client = ScimClient(client, scim["token"])
    admin_headers = {"Authorization": f"Bearer {admin['token']}"}
    assert scim_client.get("/Users").status_code == 200  # now remembered by this process
    assert client.get("/api/v1/me", headers=admin_headers).status_code == 200
    with time_machine.travel(utcnow() + timedelta(days=1, seconds=1), tick=False):
        assert scim_client.get("/Users").status_code == 401
        assert_problem(client.get("/api/v1/me", headers=admin_headers), 401)
        listed = client.get(API, headers=world.auth("admin")).get_json()["items"]
        assert {i["status"] for i in listed if i["id"] in (scim["id"], admin["id"])} == {"expired"}


def test_an_expiry_is_audited_once(client, session, world) -> None:
    made = _create(client, world, scope="scim", expires_in_days=1)
    later = utcnow() + timedelta(days=1, minutes=1)
    actor = f.SETUP
    assert tokens.note_expired(session, now=utcnow(), actor=actor) == 0
    assert tokens.note_expired(session, now=later, actor=actor) == 1
    assert tokens.note_expired(session, now=later, actor=actor) == 0
    session.commit()
    events = _audit(session, "token.expired", made["id"])
    assert len(events) == 1 and events[0].after["expires_at"] == made["expires_at"]


def test_a_scim_token_revoked_elsewhere_is_refused_after_the_cache_bound(
    client, session, world, monkeypatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    scim = ScimClient(client, _create(client, world, scope="scim")["token"])
    assert scim.get("/Users").status_code == 200
    # Another web process revokes it: this one's cache does not hear of it.
    session.execute(
        update(ApiToken).where(ApiToken.scope == TokenScope.SCIM).values(revoked_at=utcnow())
    )
    session.commit()
    now[0] += 2.0  # SCIM_TOKEN_CACHE_SECONDS in the test settings (the default)
    assert scim.get("/Users").status_code == 401


def test_an_admin_token_revoked_elsewhere_is_refused_after_the_cache_bound(
    client, session, world, monkeypatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    assert client.get("/api/v1/me", headers=world.auth("user")).status_code == 200
    session.execute(
        update(ApiToken).where(ApiToken.user_id == world.users["user"]).values(revoked_at=utcnow())
    )
    session.commit()
    now[0] += 2.0
    assert_problem(client.get("/api/v1/me", headers=world.auth("user")), 401)


def test_last_use_is_written_at_most_once_a_minute(client, session, world) -> None:
    scim = _create(client, world, scope="scim")
    scim_client = ScimClient(client, scim["token"])
    start = utcnow().replace(microsecond=0) + timedelta(seconds=1)

    def last_used() -> str | None:
        listed = client.get(API, headers=world.auth("admin")).get_json()["items"]
        return next(i["last_used_at"] for i in listed if i["id"] == scim["id"])

    assert last_used() is None
    for offset, expected in [(0, 0), (30, 0), (59, 0), (61, 61), (90, 61)]:
        with time_machine.travel(start + timedelta(seconds=offset), tick=False):
            assert scim_client.get("/Users").status_code == 200
            assert last_used() == (start + timedelta(seconds=expected)).isoformat()


def test_a_refused_request_still_records_the_last_use(client, session, world) -> None:
    before = session.get_one(ApiToken, _token_id(session, world.tokens["user"]))
    assert before.last_used_at is None
    session.commit()
    assert_problem(client.get(API, headers=world.auth("user")), 403)
    session.expire_all()
    assert session.get_one(ApiToken, before.id).last_used_at is not None


def test_a_token_of_an_older_shape_still_authenticates(client, session, world) -> None:
    """Tokens are found by hash, so a secret without the odk_<scope>_ prefix still works."""
    legacy = "legacy-" + uuid.uuid4().hex + uuid.uuid4().hex
    session.add(
        ApiToken(
            organisation_id=world.org_a,
            scope=TokenScope.SCIM,
            token_hash=hashlib.sha256(legacy.encode()).hexdigest(),
            prefix=legacy[:12],
        )
    )
    session.commit()
    assert ScimClient(client, legacy).get("/Users").status_code == 200


def test_every_scope_gets_its_own_prefix() -> None:
    """The scope list is the enum: a scope added there needs nothing more here."""
    assert {tokens.token_prefix(scope) for scope in TokenScope} == {
        f"odk_{scope.value}" for scope in TokenScope
    }


def test_the_worker_audits_expiries_on_the_beat_schedule(
    session, sessions, settings, world, worker
):
    from worker.celery_app import beat_schedule, celery_app

    assert beat_schedule(settings)["tokens-note-expired"]["task"] == "tokens.note_expired"
    token = session.scalars(select(ApiToken).where(ApiToken.user_id == world.users["user"])).one()
    token.expires_at = utcnow() - timedelta(minutes=1)  # past, as if its lifetime had run out
    session.commit()
    celery_app.send_task("tokens.note_expired")

    def audited() -> bool:
        with sessions() as fresh:
            return bool(_audit(fresh, "token.expired", token.id))

    wait_until(audited, timeout=90, what="token.expired audited by the worker")


@pytest.mark.parametrize("written_ahead", [False, True], ids=["fresh", "clock-ahead"])
def test_authenticating_writes_the_token_row_once_not_per_request(
    app, client, session, world, monkeypatch, written_ahead
) -> None:
    """With no cache every request reads the token; it still writes it once a minute at most,
    even when another host whose clock runs ahead wrote its last use "in the future"."""

    from webhooks.context import app_state

    with app.app_context():
        monkeypatch.setattr(app_state().settings, "scim_token_cache_seconds", 0.0)
        engine = app_state().engine
    if written_ahead:
        session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == world.users["admin"])
            .values(last_used_at=utcnow() + timedelta(minutes=5))
        )
        session.commit()
    statements: list[str] = []

    def remember(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with listening(engine, before_cursor_execute=remember):
        for _ in range(5):
            assert client.get("/api/v1/teams", headers=world.auth("admin")).status_code == 200
    token_reads = [s for s in statements if s.lstrip().startswith("SELECT") and "api_tokens" in s]
    token_writes = [s for s in statements if s.lstrip().startswith("UPDATE api_tokens")]
    assert len(token_reads) == 5
    assert len(token_writes) == (0 if written_ahead else 1)


def test_an_odock_token_has_the_same_lifecycle(client, session, world) -> None:
    """Every scope goes through one path: expiry, revocation and last use hold for `odock`."""
    made = _create(client, world, scope="odock", name="bridge", expires_in_days=1)
    assert made["token"].startswith("odk_odock_")
    headers = {"Authorization": f"Bearer {made['token']}", "Content-Type": "application/json"}

    def push_usage() -> int:
        return client.post("/odock/v1/usage", data="{}", headers=headers).status_code

    assert push_usage() == 400  # past authentication: the empty batch itself is refused
    listed = client.get(API, headers=world.auth("admin")).get_json()["items"]
    assert next(i for i in listed if i["id"] == made["id"])["last_used_at"] is not None
    with time_machine.travel(utcnow() + timedelta(days=1, seconds=1), tick=False):
        assert push_usage() == 401
    assert client.delete(f"{API}/{made['id']}", headers=world.auth("admin")).status_code == 204
    assert push_usage() == 401
