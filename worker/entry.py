"""What `celery -A worker.entry` loads: the app, configured from the environment."""

from celery import Celery

from models.settings import load_settings
from worker.celery_app import configure_celery
from worker.runtime import init_runtime


def boot() -> Celery:
    settings = load_settings()
    init_runtime(settings)
    return configure_celery(settings)


app = boot()
