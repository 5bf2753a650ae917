"""The smaller findings of the outside review: Slack escaping, SQL parameters in logs, the
acknowledgement page, Host-built redirects, SQLite file modes, IdP receivers' 404s and the
event-hook statuses."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from connectors.notify_formats import slack_body
from models.db import make_engine
from models.enums import Role
from models.settings import Settings
from tests.reviews.test_api import arrange
from tests.support import factories
from tests.support.keys import TEST_SECRET_KEY


def test_slack_text_escapes_names_users_chose():
    hostile = "<!channel> <https://evil.test/login|Open the review> & co"
    body = json.loads(
        slack_body(
            event="review.opened",
            payload={
                "message": hostile,
                "user": {"email": "x@corp.test"},
                "findings": [
                    {"severity": "high", "kind": "key", "subject_name": hostile, "action": "x"}
                ],
            },
            ack_url="https://odock-sync.test/reviews/acknowledge/t",
        )
    )
    mrkdwn = [body["text"]] + [
        block["text"]["text"] for block in body["blocks"] if block["type"] == "section"
    ]
    for text_ in mrkdwn:
        assert "<!channel>" not in text_ and "<https://" not in text_
        assert "&lt;!channel&gt;" in text_ or "Revocation review" in text_
    assert "&amp; co" in mrkdwn[1]


def test_a_database_error_never_carries_the_statement_parameters(settings):
    engine = make_engine(settings)
    try:
        with pytest.raises(Exception) as failed, engine.connect() as connection:
            connection.execute(
                text("SELECT no_such_column FROM users WHERE email = :email"),
                {"email": "secret.person@corp.test"},
            )
        assert "secret.person@corp.test" not in str(failed.value)
    finally:
        engine.dispose()


def test_a_500_logs_no_sql_parameters(settings, clean_db, capfd):
    """On an app of its own: the shared one has served requests, and Flask refuses new
    routes after that."""
    from webhooks.app import create_app
    from webhooks.context import EXTENSION, db_session

    app = create_app(settings)

    def failing() -> str:
        db_session().execute(
            text("SELECT no_such_column FROM users WHERE email = :email"),
            {"email": "searched.term@corp.test"},
        )
        return "unreachable"

    app.add_url_rule("/api/v1/_test_failure", view_func=failing)
    answer = app.test_client().get("/api/v1/_test_failure")
    assert answer.status_code == 500 and answer.json["title"] == "internal_error"
    logged = capfd.readouterr().err
    assert "request.failed" in logged
    assert "searched.term@corp.test" not in logged
    app.extensions[EXTENSION].engine.dispose()


def test_acknowledge_pages_are_hardened_styled_and_name_no_hook(session, client, settings):
    _world, review, _tokens = arrange(session)
    session.commit()
    token = factories.review_ack_token(settings.secret_key, review, "hook:admins-channel")
    for answer in (
        client.get(f"/reviews/acknowledge/{token}"),
        client.get("/reviews/acknowledge/garbage"),
        client.post(f"/reviews/acknowledge/{token}"),
    ):
        assert answer.mimetype == "text/html"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "<style>" in answer.text
        assert "hook:" not in answer.text


@pytest.mark.parametrize(
    "path", ["/api//v1/users", "/api/v1//users", "//evil.test/x", "//healthz", "/api/v1/users/"]
)
def test_no_redirect_is_built_from_the_host_header(client, path):
    answer = client.get(path, headers={"Host": "evil.test"})
    assert not 300 <= answer.status_code < 400, answer.headers.get("Location")
    assert "Location" not in answer.headers


def test_sqlite_files_are_private(tmp_path: Path):
    from kombu import Connection

    from worker import sqlite_broker

    database = tmp_path / "odock-sync.sqlite3"
    settings = Settings(database_url=f"sqlite:///{database}", secret_key=TEST_SECRET_KEY)
    engine = make_engine(settings)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as connection:  # an open reader keeps the WAL and its index
        connection.execute(text("SELECT * FROM t")).all()
        sqlite_broker.register()
        broker = tmp_path / "odock-sync-broker.sqlite3"
        with Connection(f"sqla+sqlite:///{broker}") as kombu:
            queue = kombu.SimpleQueue("q")
            queue.put({"x": 1})
            queue.close()
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm"), broker]
        for path in files:
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    engine.dispose()


def test_idp_receivers_do_not_tell_which_organisations_exist(client, session, settings):
    """An unknown slug and an organisation without that hook configured answer alike."""
    from models.actions import event_hooks

    okta_only, events_only = factories.make_org(session), factories.make_org(session)
    event_hooks.set_okta_secret(
        session, organisation=okta_only, secret_key=settings.secret_key, actor=factories.SETUP
    )
    event_hooks.add_signing_secret(
        session, organisation=events_only, secret_key=settings.secret_key, actor=factories.SETUP
    )
    session.commit()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}"
    events = [client.post(f"/hooks/events/{slug}", json={}) for slug in (okta_only.slug, unknown)]
    okta = [
        client.get(f"/hooks/okta/{slug}", headers={"X-Okta-Verification-Challenge": "c"})
        for slug in (events_only.slug, unknown)
    ]
    for pair in (events, okta):
        assert {(a.status_code, a.get_data()) for a in pair} == {
            (pair[0].status_code, pair[0].get_data())
        }
        assert pair[0].status_code == 404 and pair[0].json["title"] == "unknown_hook"


def test_event_hook_deletions_answer_204_and_a_new_secret_201_as_documented(client, session):
    org = factories.make_org(session)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN)
    headers = {"Authorization": f"Bearer {factories.admin_token(session, org, admin)}"}
    session.commit()
    assert client.put("/api/v1/event-hooks/okta", json={}, headers=headers).status_code == 200
    cleared = client.delete("/api/v1/event-hooks/okta", headers=headers)
    assert (cleared.status_code, cleared.data) == (204, b"")
    added = client.post("/api/v1/event-hooks/signing-secrets", json={}, headers=headers)
    assert added.status_code == 201
    removed = client.delete(
        f"/api/v1/event-hooks/signing-secrets/{added.json['id']}", headers=headers
    )
    assert (removed.status_code, removed.data) == (204, b"")
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert "204" in paths["/event-hooks/okta"]["delete"]["responses"]
    assert "201" in paths["/event-hooks/signing-secrets"]["post"]["responses"]
    assert "204" in paths["/event-hooks/signing-secrets/{secret_id}"]["delete"]["responses"]


def test_a_threshold_beyond_the_column_is_a_400_not_a_500(client, session):
    """Found by the schemathesis run on PostgreSQL (an integer column overflowed)."""
    org = factories.make_org(session)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN)
    headers = {"Authorization": f"Bearer {factories.admin_token(session, org, admin)}"}
    session.commit()
    answer = client.put(
        "/api/v1/mass-change/settings", json={"threshold_count": 4294967295}, headers=headers
    )
    assert answer.status_code == 400 and answer.json["field"] == "threshold_count"


@pytest.mark.parametrize("path", ["/console", "/console/sign-in", "/console/reviews/x"])
def test_a_host_header_werkzeug_cannot_read_is_a_console_page_not_a_500(client, path):
    """A host label over 63 characters is werkzeug's BadHost, and leaves the request without
    the URL adapter the console's error page builds its links with: that page failed, a
    500 (found by tests/security/test_hostile_routes.py)."""
    answer = client.get(path, headers={"Host": "x" * 64 + ".test"})
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "text/html"
    assert "Traceback" not in answer.get_data(as_text=True)
    assert 'href="/console/static/console.css"' in answer.get_data(as_text=True)
