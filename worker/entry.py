"""What `celery -A worker.entry` loads: the app, configured from the environment."""

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from models.observability import configure_logging, configure_stdlib_logging
from models.settings import load_settings
from worker.celery_app import configure_celery
from worker.runtime import init_runtime


def boot() -> Celery:
    settings = load_settings()
    configure_logging(settings)
    init_runtime(settings)
    return configure_celery(settings)


@setup_logging.connect
def _json_logs(loglevel: Any = None, **_kwargs: Any) -> None:
    """Celery's own log records go out as the same redacted JSON lines as ours."""
    from worker.runtime import runtime

    configure_stdlib_logging(runtime().settings, level=loglevel)


app = boot()
