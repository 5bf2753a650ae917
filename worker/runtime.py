"""The worker process's settings and database sessions, set up once per process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from connectors.email import SmtpConfig
from models.db import SessionFactory, make_session_factory, make_worker_engine
from models.observability import configure_logging
from models.settings import Settings, load_settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: SessionFactory


_current: Runtime | None = None

# What a send records when there is no SMTP server and the mail stays in the local outbox.
KEPT_LOCALLY = "kept in the local outbox (SMTP_HOST is unset): see `odock-sync mail list`"


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP server to send email through, or None where none is configured (then mail
    is kept in the local outbox)."""
    if not settings.smtp_host:
        return None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )


def init_runtime(settings: Settings) -> Runtime:
    global _current
    configure_logging(settings)  # before any work: redacted lines, never a traceback's locals
    if _current is not None:
        _current.engine.dispose()
    engine = make_worker_engine(settings)
    _current = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine, odock_mode=settings.odock_mode),
    )
    from worker.outbox_relay import install_after_commit_relay

    install_after_commit_relay(_current.sessions)
    return _current


def runtime() -> Runtime:
    """The current runtime; a worker started by the celery CLI builds it from the environment."""
    return _current or init_runtime(load_settings())
