"""Health, readiness, metrics and logs as an operator relies on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST

from models.enums import Role
from models.settings import Settings
from tests.support import factories as f


@pytest.fixture
def app_with(settings: Settings, engine, clean_db) -> Iterator:
    """Build an app on changed settings; put the shared Celery app back afterwards."""
    from webhooks.app import create_app
    from webhooks.context import EXTENSION
    from worker.celery_app import configure_celery

    apps: list[Flask] = []

    def build(**changes: object) -> Flask:
        app = create_app(settings.model_copy(update=changes))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions[EXTENSION].engine.dispose()
    configure_celery(settings)


def test_healthz_and_readyz_answer_when_everything_is_up(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok"},
        "degraded": [],
    }


def test_readyz_says_degraded_when_the_broker_is_unreachable(app_with) -> None:
    """The web still answers without the broker (the outbox keeps the work): ready, degraded."""
    app = app_with(celery_broker_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded" and body["degraded"] == ["broker"]
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"].startswith("error")
    assert app.test_client().get("/healthz").status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable(app_with, tmp_path) -> None:
    app = app_with(database_url=f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_metrics_count_requests_by_endpoint_and_status(client) -> None:
    def count(endpoint: str, status: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = f'odock_http_requests_total{{endpoint="{endpoint}",status="{status}"}} '
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    before_ok, before_401 = count("health.healthz", "200"), count("users.index", "401")
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/v1/users")
    assert count("health.healthz", "200") == before_ok + 2
    assert count("users.index", "401") == before_401 + 1
    metrics = client.get("/metrics")
    assert metrics.mimetype == "text/plain"
    assert metrics.headers["Content-Type"] == CONTENT_TYPE_LATEST  # one charset, not two
    assert metrics.headers["Content-Type"].count("charset") == 1
    assert "odock_http_request_seconds_bucket" in metrics.get_data(as_text=True)


def test_logs_are_json_and_never_carry_a_secret(app_with, session, capfd) -> None:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    secret = f.admin_token(session, org, admin)
    session.commit()
    app = app_with(log_level="INFO", log_json=True)
    client = app.test_client()
    capfd.readouterr()

    assert (
        client.get("/api/v1/users", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    wrong = secret[:-4] + "AAAA"
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    assert (
        client.get(
            f"/api/v1/users?q={secret}", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 200
    )
    client.post("/api/v1/users", data=b"{broken", headers={"Authorization": f"Bearer {secret}"})

    captured = capfd.readouterr()
    output = captured.err + captured.out
    lines = [line for line in output.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is JSON
    names = [event["event"] for event in events]
    assert names.count("http.request") == 4 and "auth.rejected" in names
    for secretish in (secret, wrong, secret[10:30], wrong[10:30]):
        assert secretish not in output
    request_logs = [e for e in events if e["event"] == "http.request"]
    assert {e["route"] for e in request_logs} == {"/api/v1/users", "/api/v1/me"}
    assert {e["status"] for e in request_logs} == {200, 401, 400}


def test_the_log_redactor_hides_secrets_in_keys_and_values() -> None:
    from models.observability import redact_secrets

    event = {
        "event": "x",
        "password": "hunter2",
        "gateway_secret": "s",
        "note": "sent Bearer abc.def and odk_scim_0123456789abcdef",
    }
    cleaned = redact_secrets(None, "info", dict(event))
    assert cleaned["password"] == cleaned["gateway_secret"] == "[redacted]"
    assert "abc.def" not in cleaned["note"] and "odk_scim_0123" not in cleaned["note"]


@pytest.mark.parametrize(
    "secret",
    [
        "odk_odock_jeJ5RbAW5OPaZlpcStE77LVXLRQlCPtllkgKSLe2ZjY",  # the Odock bridge's token
        "odk_console_l0TRiUJfiypGCmZMw0LhlT4TN6-LjvAeKz43ZIs59pk",  # a console session
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # a notification hook's signing secret
        "okta_Pc3f2mDq0x9YbW1nE7uZrT5kLhA8sJvG",  # an Okta event hook's secret
    ],
)
def test_the_log_redactor_hides_every_kind_of_secret_this_service_issues(secret) -> None:
    from models.observability import redact_secrets

    cleaned = redact_secrets(None, "info", {"event": "x", "note": f"got {secret} back"})

    assert secret[-12:] not in cleaned["note"], cleaned
    assert cleaned["note"] == "got [redacted] back"


def test_the_log_redactor_hides_the_password_of_a_url() -> None:
    from models.observability import redact_secrets

    note = "cannot reach postgresql://odock:Pg-pass_w0rd@db.internal:5432/odock (refused)"
    cleaned = redact_secrets(None, "info", {"event": "x", "note": note})

    assert cleaned["note"] == (
        "cannot reach postgresql://odock:[redacted]@db.internal:5432/odock (refused)"
    )


def test_the_worker_logs_json_lines(worker) -> None:
    """Celery's own records (after its start-up banner) are our JSON lines too."""
    records = [record for line in worker.log().splitlines() for record in _json_records(line)]
    ready = [r for r in records if r["event"].endswith(" ready.")]
    assert ready and ready[0]["logger"] == "celery.apps.worker" and ready[0]["level"] == "info"
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)


def _json_records(line: str) -> list[dict]:
    """The JSON records on one log line. The worker's processes share one file, and a
    child's record can land right after another's before its newline; each must still be a
    whole JSON object."""
    decoder, records, index = json.JSONDecoder(), [], 0
    while line.startswith("{", index):
        record, index = decoder.raw_decode(line, index)
        records.append(record)
    return records


def test_metrics_show_the_outbox_and_the_cutoffs_waiting_on_the_gateway(
    client, session, monkeypatch
) -> None:
    """Nothing is published (the broker is down): the backlog, the pending invalidations and,
    once their deadline has passed, the cut-offs past it are on /metrics."""
    from datetime import timedelta

    from sqlalchemy import update

    from models.actions import lifecycle
    from models.base import utcnow
    from models.entities import KeyCutoff, OutboxMessage
    from worker.celery_app import celery_app

    def gauge(name: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        (line,) = [row for row in text.splitlines() if row.startswith(f"{name} ")]
        return float(line.split()[-1])

    monkeypatch.setattr(celery_app, "send_task", _broker_down)
    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    f.make_key(session, org, owner=person)
    lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.commit()
    assert gauge("odock_invalidations_pending") == 2
    assert gauge("odock_outbox_backlog") == 2  # the invalidation and the review
    assert gauge("odock_cutoffs_past_deadline") == 0

    an_hour_ago = utcnow() - timedelta(hours=1)
    session.execute(update(KeyCutoff).values(requested_at=an_hour_ago))
    session.execute(update(OutboxMessage).values(available_at=an_hour_ago))
    session.commit()
    assert gauge("odock_cutoffs_past_deadline") == 2
    assert gauge("odock_invalidation_oldest_pending_seconds") >= 3600
    assert gauge("odock_outbox_oldest_age_seconds") >= 3600
    text = client.get("/metrics").get_data(as_text=True)
    assert 'odock_notification_deliveries_failing{state="retrying"} 0.0' in text


def _broker_down(*_args: object, **_kwargs: object) -> None:
    raise ConnectionRefusedError("broker down")


def test_a_process_running_domain_work_logs_a_crash_without_its_locals(tmp_path) -> None:
    """A CLI sync or any process that sets up the runtime logs a crash as a plain, redacted
    traceback: unconfigured, structlog renders every frame's locals (a bind password)."""
    script = (
        "import structlog\n"
        "from models.settings import load_settings\n"
        "from worker.runtime import init_runtime\n"
        "init_runtime(load_settings())\n"
        "def bind(password):\n"
        "    raise RuntimeError('directory refused the bind')\n"
        "try:\n"
        "    bind('hunter2-secret')\n"
        "except RuntimeError as exc:\n"
        "    structlog.get_logger().error('directory_sync.crashed', exc_info=exc)\n"
    )
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "COLUMNS": "200",
    }
    environment.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "RuntimeError: directory refused the bind" in done.stderr
    assert "hunter2-secret" not in done.stderr + done.stdout


def test_readyz_is_503_until_the_database_has_this_versions_schema(app_with, tmp_path) -> None:
    """Unmigrated or older, every request would fail (500s): not ready, and what to run.
    A newer schema (a rolling upgrade ran `db upgrade` first) is served from."""
    from sqlalchemy import create_engine, text

    from models.migrate import upgrade

    url = f"sqlite:///{tmp_path}/schema.sqlite3"
    app = app_with(database_url=url)

    def database_check() -> tuple[int, str]:
        response = app.test_client().get("/readyz")
        return response.status_code, response.get_json()["checks"]["database"]

    assert database_check() == (503, "error: no schema: run `odock-sync db upgrade`")
    engine = create_engine(url)
    upgrade(engine)
    assert database_check() == (200, "ok")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": OLDER})
    status, check = database_check()
    assert status == 503 and check.startswith(f"error: schema {OLDER} is older than"), check
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999_newer'"))
    assert database_check() == (200, "ok")
    engine.dispose()


OLDER = "0039_revocation_ended_access"
