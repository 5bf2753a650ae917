"""Structured JSON logs that never carry a secret."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from models.settings import Settings
from models.text import visible, visible_lines

SECRET_KEYS = re.compile(r"(password|secret|token|authorization|signature|cookie)", re.IGNORECASE)
# Each kind of secret this service issues, by its prefix: API tokens of every scope
# (models.actions.tokens: odk_<scope>_), invitation tokens, Standard Webhooks signing secrets
# (whsec_), Okta event hook secrets (okta_); and any bearer credential.
SECRET_VALUES = re.compile(
    r"odk_[a-z]+_[A-Za-z0-9_\-]+|(inv|okta)_[A-Za-z0-9_\-]{20,}|whsec_[A-Za-z0-9+/=]{20,}"
    r"|Bearer\s+\S+"
)
# The password of a URL's user information (a DATABASE_URL, a broker URL in an error).
URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):[^@\s]+@")


def redact_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            value = URL_PASSWORD.sub(r"\1:[redacted]@", value)
            event[key] = SECRET_VALUES.sub("[redacted]", value)
    return event


# Texts the console renderer writes on lines of their own after the record: their line
# breaks are the writer's (a traceback's), their other control characters are shown.
MULTILINE_KEYS = ("exception", "stack")


def show_control_characters(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every string value visible() for the console renderer, which writes values raw: a
    line break or an escape someone sent (a name, a request path) neither starts a record
    of its own nor drives the terminal. JSON escapes them itself."""
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = visible_lines(value) if key in MULTILINE_KEYS else visible(value)
    return event


def _rendering(settings: Settings) -> list[Any]:
    if settings.log_json:
        return [structlog.processors.JSONRenderer()]
    return [show_control_characters, structlog.dev.ConsoleRenderer()]


def configure_stdlib_logging(settings: Settings, level: int | str | None = None) -> None:
    """Render the standard `logging` records (Celery's own) as our JSON lines, redacted."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            *_rendering(settings),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or settings.log_level)  # a --loglevel on the command line wins


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    # sys.stderr is looked up per logger, not once: a stream replaced since (pytest's capture,
    # a daemonised worker) must not leave every later log line writing to a closed file.
    return structlog.PrintLogger(sys.stderr)


def configure_logging(settings: Settings) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            *_rendering(settings),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level)
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
