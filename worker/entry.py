"""What `celery -A worker.entry` loads: the app, configured from the environment."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from models.observability import configure_logging, configure_stdlib_logging
from models.settings import SettingsError, load_settings
from worker import pool_results
from worker.celery_app import configure_celery
from worker.runtime import init_runtime
from worker.tracing import start_tracing, tracing_config


def boot() -> Celery:
    try:
        settings = load_settings()
        tracing_config(os.environ, process="worker")  # a bad OTEL_* stops the worker here, once
    except SettingsError as exc:
        # One line and exit 1: Celery would print the traceback of anything else raised while
        # it loads the app (SystemExit passes through it).
        raise SystemExit(f"odock-sync: {exc}") from None
    configure_logging(settings)
    init_runtime(settings)
    pool_results.register()
    return configure_celery(settings)


@setup_logging.connect
def _json_logs(loglevel: Any = None, **_kwargs: Any) -> None:
    """Celery's own log records go out as the same redacted JSON lines as ours."""
    from worker.runtime import runtime

    configure_stdlib_logging(runtime().settings, level=loglevel)


@worker_process_init.connect
def _trace_tasks(**_kwargs: Any) -> None:
    """Each pool process traces its own tasks (when OTEL_* asks): set up after the fork."""
    from worker.runtime import runtime

    start_tracing(process="worker", engine=runtime().engine)


app = boot()
