"""Test fixtures on real services.

DATABASE_URL and CELERY_BROKER_URL name the servers to use (CI sets them to the machine's
PostgreSQL and Redis); unset, the suite runs on the embedded defaults (SQLite files and the
SQLAlchemy broker) in a temporary directory. A server that is named but unreachable fails the
run. Each run gets a database and a queue of its own, so runs can share the servers.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.db import SessionFactory, make_engine, make_session_factory
from models.migrate import upgrade
from models.settings import Settings
from tests.support.apps import Apps
from tests.support.broker import remove_queues
from tests.support.cleanup import empty_tables
from tests.support.keys import TEST_SECRET_KEY
from tests.support.net import bound_listener
from tests.support.schedule import scheduled
from tests.support.shared_worker import SharedWorker
from tests.support.smtp import Mailbox, start_smtp_server
from tests.support.state import change_checker
from tests.support.worker import WorkerProcess

REDIS_DATABASES = 16  # redis-server's default


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first, and each file's worker tests last (tests/support/schedule.py)."""
    items[:] = scheduled(items)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'odock-test.sqlite3'}"
        return
    url = make_url(configured.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"odock_test_{run_id}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    configured = os.environ.get("CELERY_BROKER_URL")
    if configured:
        return redis_database_of_worker(configured, os.environ.get("PYTEST_XDIST_WORKER", ""))
    return f"sqla+sqlite:///{tmp_path_factory.mktemp('broker') / 'broker.sqlite3'}"


def redis_database_of_worker(url: str, worker: str) -> str:
    """Each pytest-xdist worker (gw0, gw1, ...) on a Redis database of its own, after the
    configured one. Its queues and wake-up flags are named by its run already; this keeps
    kombu's shared bookkeeping (unacked messages, bindings) apart too."""
    parts = urlsplit(url)
    if not worker.startswith("gw") or parts.scheme not in ("redis", "rediss"):
        return url
    configured = int(parts.path.strip("/") or 0)
    database = (configured + 1 + int(worker.removeprefix("gw"))) % REDIS_DATABASES
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    controller, mailbox = start_smtp_server()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Controller, Mailbox]) -> Mailbox:
    """The loopback SMTP server's received mail, emptied for each test."""
    smtp_server[1].clear()
    return smtp_server[1]


@pytest.fixture(scope="session")
def public_listener() -> Iterator[socket.socket]:
    """The listening socket a test may serve the web app on (werkzeug's `make_server(...,
    fd=public_listener.fileno())`), bound for the whole run so its port cannot be taken."""
    with bound_listener() as listener:
        yield listener


@pytest.fixture(scope="session")
def public_port(public_listener: socket.socket) -> int:
    """The port of `public_listener`; links in emails point at it."""
    return int(public_listener.getsockname()[1])


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    broker_url: str,
    run_id: str,
    make_httpserver: HTTPServer,
    smtp_server: tuple[Controller, Mailbox],
    public_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The settings of this run; outbound HTTP goes to the loopback `httpserver`."""
    return Settings(
        database_url=database_url,
        database_pool_size=2,  # suites of several checkouts share one PostgreSQL's 100 clients
        celery_broker_url=broker_url,
        celery_queue=f"odock-test-{run_id}",
        broker_poll_interval=0.05,
        secret_key=TEST_SECRET_KEY,
        public_base_url=f"http://127.0.0.1:{public_port}",
        log_json=True,
        log_level="WARNING",
        # Tests read what a request published as soon as it answers (many replace send_task);
        # the background publisher runs in the served tests and tests/faults/test_blackhole.py.
        outbox_publish_in_background=False,
        gateway_url=make_httpserver.url_for("/gateway"),
        gateway_secret="gateway-shared-secret",
        gateway_timeout=2.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[0].port,
        smtp_from="odock-sync@example.test",
        outbound_allow_loopback=True,  # every test server listens on 127.0.0.1
        ldap_ca_directory=str(tmp_path_factory.getbasetemp()),  # slapd writes its CAs there
        notification_retry_base=0.05,
        notification_retry_max=1.0,
        hook_disable_after_failures=6,
        audit_stream_retry_base=0.05,
        audit_stream_retry_max=0.5,
    )


@pytest.fixture(scope="session", autouse=True)
def broker_left_clean(settings: Settings) -> Iterator[None]:
    """Set up before any worker of the run, so taken down after them all."""
    yield
    remove_queues(settings.celery_broker_url, settings.celery_queue)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> SessionFactory:
    from worker.outbox_relay import install_after_commit_relay

    factory = make_session_factory(engine)
    install_after_commit_relay(factory)
    return factory


@pytest.fixture(scope="session", autouse=True)
def celery_configured(settings: Settings) -> None:
    from worker.celery_app import configure_celery
    from worker.runtime import init_runtime

    configure_celery(settings)
    init_runtime(settings)


@pytest.fixture(autouse=True)
def runtime_of_the_run(settings: Settings) -> None:
    """A test that ran the CLI under other settings (the CLI builds the process's runtime and
    Celery setup from its environment, e.g. a database on port 1) leaves them behind; the
    next test gets the run's back."""
    from worker.celery_app import configure_celery
    from worker.runtime import init_runtime, runtime

    if runtime().settings != settings:
        configure_celery(settings)
        init_runtime(settings)


@pytest.fixture
def dropping_connections(apps: Apps, engine: Engine, shared_worker: SharedWorker) -> Iterator[None]:
    """For a test that terminates the database's backends: afterwards every pool of this
    process starts afresh, so that the next test, sharing the apps, the runtime and the
    engine, meets no connection the server has dropped (a request would answer 503), and the
    next file's `worker` is a fresh process."""
    from worker.runtime import runtime

    yield
    engine.dispose()
    apps.dispose_pools()
    runtime().engine.dispose()
    shared_worker.drop_connections()


@pytest.fixture
def clean_db(engine: Engine) -> None:
    """Every test starts from empty tables (committed data, so a worker process sees it)."""
    for attempt in range(5):
        try:
            empty_tables(engine)
            return
        except OperationalError as exc:
            # The session's worker may still be finishing an earlier test's task; PostgreSQL
            # then picks the cleanup as a deadlock victim. Try again.
            if "deadlock" not in str(exc) or attempt == 4:
                raise


@pytest.fixture
def session(sessions: SessionFactory, clean_db: None) -> Iterator[Session]:
    """A session for arranging and checking. On SQLite each transaction takes the write lock
    (BEGIN IMMEDIATE), so commit or roll back before another process or session must write."""
    with sessions() as session:
        yield session


@pytest.fixture
def unchanged(sessions: SessionFactory) -> Callable[[], None]:
    """Call it once before a request and once after: the second call asserts no change."""
    return change_checker(sessions)


@pytest.fixture(scope="session")
def apps(engine: Engine) -> Iterator[Apps]:
    built = Apps()
    yield built
    built.close()


@pytest.fixture
def app(apps: Apps, settings: Settings, clean_db: None) -> Flask:
    return apps.for_settings(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client_with(apps: Apps, settings: Settings, clean_db: None) -> Callable[..., FlaskClient]:
    """A test client of an app whose settings differ from the suite's by `changes`."""

    def make(**changes: Any) -> FlaskClient:
        return apps.for_settings(settings.model_copy(update=changes)).test_client()

    return make


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the worker writes its Prometheus figures (multiprocess mode), as under `serve`."""
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="session")
def shared_worker(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory, metrics_dir: Path
) -> Iterator[SharedWorker]:
    """The process behind `worker`, started by the first file that needs it (one per xdist
    worker: starting one costs seconds, and so does a warm shutdown)."""
    shared = SharedWorker(
        settings,
        log_dir=Path(tmp_path_factory.mktemp("worker")),
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def worker(shared_worker: SharedWorker) -> Iterator[WorkerProcess]:
    """A real Celery worker process on the test broker and database, for one test file.

    It starts on empty queues and stops consuming with its file: a worker that went on
    consuming after its file would take the tasks later files publish (notifications, reviews)
    while their tests look at the rows those tasks change. The process itself is shared by
    the files (tests/support/shared_worker.py); its log shows a file its start-up lines and
    what it logged during that file."""
    process = shared_worker.start_file()
    yield process
    shared_worker.end_file()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (one for the run: the invitation
    pages and the README walk-through share it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        yield browser
        browser.close()
