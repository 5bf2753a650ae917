"""OpenTelemetry traces, end to end: gunicorn serving the app factory and a real Celery worker
export to a real OTLP/HTTP receiver on loopback; a request and the task it enqueues are one
trace. Unset, nothing of the SDK is loaded and nothing is sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from cli.serve import GUNICORN_CONFIG
from models.db import SessionFactory
from models.entities import RevocationReview
from models.enums import Role
from models.settings import Settings, SettingsError
from tests.support import factories as f
from tests.support.net import start_on_a_free_port, wait_listening
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.wait import wait_until
from tests.support.worker import ROOT, WorkerProcess, settings_env, spawn_worker, wait_ready
from worker.tracing import tracing_config

pytestmark = pytest.mark.slow

TASK = "reviews.open_for_revocation"
REVOKE_ROUTE = "POST /api/v1/users/<uuid:user_id>/revoke"
Stack = Callable[[dict[str, str]], str]  # starts the web and a worker; returns the web's URL


@dataclass
class Web:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_web(settings: Settings, env: dict[str, str], log_dir: Path) -> Web:
    """The web process as `serve` and the Procfile run it: gunicorn on the app factory."""
    return start_on_a_free_port(lambda port: start_web_on(port, settings, env, log_dir))


def start_web_on(port: int, settings: Settings, env: dict[str, str], log_dir: Path) -> Web:
    log_path = log_dir / f"web-{port}.log"
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--threads", "2", "--config", GUNICORN_CONFIG]
    web = Web(
        subprocess.Popen(
            [*command, "webhooks.app:create_app()"],
            cwd=ROOT,
            env=settings_env(settings, **env),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        f"http://127.0.0.1:{port}",
        log_path,
    )
    wait_listening(web.process, [port], log_path)

    def answers() -> bool:
        if web.process.poll() is not None:
            raise AssertionError(f"web exited:\n{log_path.read_text()}")
        try:
            return requests.get(f"{web.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(answers, timeout=60, interval=0.2, what="gunicorn to answer")
    return web


def without_otel(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not name.startswith("OTEL_")}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    yield started
    started.stop()


@pytest.fixture
def own_queue(settings: Settings) -> Settings:
    """A queue of its own: the session's worker (untraced) must not take these tasks."""
    return settings.model_copy(update={"celery_queue": f"{settings.celery_queue}-otel"})


@pytest.fixture
def stack(own_queue: Settings, tmp_path: Path, metrics_dir: Path) -> Iterator[Stack]:
    """Start the web and a worker with the given OTEL_* variables and no others."""
    started: list[Web | WorkerProcess] = []

    def start(otel: dict[str, str]) -> str:
        """The worker and the web start side by side (each spends seconds importing)."""
        env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **otel}
        worker = spawn_worker(own_queue, log_dir=tmp_path, concurrency=1, extra_env=env)
        started.append(worker)
        web = start_web(own_queue, env, tmp_path)
        started.append(web)
        wait_ready(worker)
        return web.url

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(without_otel(saved))  # the children inherit our environment
    try:
        yield start
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop_together(started)


def stop_together(processes: list[Web | WorkerProcess]) -> None:
    """Each stop waits seconds for its process to wind down; the waits overlap."""
    with ThreadPoolExecutor(max_workers=max(len(processes), 1)) as pool:
        list(pool.map(lambda process: process.stop(), processes))


def revoke_someone(session: Session, web_url: str) -> None:
    """An admin's request that enqueues a task (the revocation's review)."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    token = f.admin_token(session, org, admin)
    session.commit()
    answer = requests.post(
        f"{web_url}/api/v1/users/{person.id}/revoke",
        json={"reason": "left"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def review_opened(sessions: SessionFactory) -> bool:
    with sessions() as fresh:
        return fresh.scalar(select(RevocationReview.id)) is not None


def one(spans: list[ReceivedSpan], **match: str) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s.name, s.kind, s.process) for s in spans])
    return found[0]


def test_a_request_and_the_task_it_enqueues_are_one_trace(
    session: Session, stack: Stack, receiver: OtlpReceiver
) -> None:
    web_url = stack(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "odock-sync-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    revoke_someone(session, web_url)

    def whole_trace() -> list[ReceivedSpan]:
        """The spans, once the request's, its publish's, the task's and the SQL of the request
        and of the task have all come: each process exports in batches of its own, as they end
        (the task's last SQL spans in a later batch than its own)."""
        spans = receiver.snapshot()
        ran = [s for s in spans if s.name == f"run/{TASK}"]
        served = [s for s in spans if s.name == REVOKE_ROUTE and s.kind == "SERVER"]
        published = [s for s in spans if s.name == f"apply_async/{TASK}"]
        parents = {s.parent_span_id for s in spans if s.kind == "CLIENT"}
        if ran and served and published and {ran[0].span_id, served[0].span_id} <= parents:
            return spans
        return []

    spans = wait_until(whole_trace, timeout=60, interval=0.2, what="the request's and task's spans")
    server = one(spans, name=REVOKE_ROUTE, kind="SERVER")
    trace = [s for s in spans if s.trace_id == server.trace_id]
    publish = one(trace, name=f"apply_async/{TASK}", kind="PRODUCER")
    run = one(trace, name=f"run/{TASK}", kind="CONSUMER")
    sql = [s for s in trace if s.kind == "CLIENT"]

    assert (server.service, server.process) == ("odock-sync-under-test", "web")
    assert (run.service, run.process) == ("odock-sync-under-test", "worker")
    assert publish.parent_span_id == server.span_id
    assert run.parent_span_id == publish.span_id
    assert any(s.parent_span_id == server.span_id for s in sql), "the request's SQL"
    assert any(s.parent_span_id == run.span_id for s in sql), "the task's SQL"
    assert all(s.attributes.get("db.system") == db_system(session) for s in sql)


def db_system(session: Session) -> str:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def test_with_the_sdk_disabled_nothing_is_sent(
    session: Session, sessions: SessionFactory, stack: Stack, receiver: OtlpReceiver
) -> None:
    web_url = stack(
        {
            "OTEL_SDK_DISABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    revoke_someone(session, web_url)
    wait_until(lambda: review_opened(sessions), timeout=60, what="the task to run")
    time.sleep(1.0)  # five export intervals
    assert receiver.requests == 0


UNSET_PROBE = """
import sys
from webhooks.app import create_app
from worker.tracing import start_tracing
app = create_app()
assert app.test_client().get("/healthz").status_code == 200
assert not start_tracing(process="worker")
loaded = sorted(m for m in sys.modules if m.startswith(
    ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "opentelemetry.exporter")))
print("loaded:", loaded)
print("wrapped:", hasattr(app, "_is_instrumented_by_opentelemetry"))
"""


def test_unset_loads_no_tracing_and_wraps_nothing(settings: Settings) -> None:
    env = without_otel(settings_env(settings))
    probe = subprocess.run(
        [sys.executable, "-c", UNSET_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert "loaded: []" in probe.stdout
    assert "wrapped: False" in probe.stdout


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_which_variables_turn_traces_on(environ: dict[str, str], on: bool) -> None:
    assert (tracing_config(environ, process="web") is not None) is on


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_what_cannot_be_honoured_fails_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="OTEL_"):
        tracing_config(environ, process="web")
