"""The one Celery app. Configured explicitly from the settings; nothing connects at import."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from models.settings import Settings
from worker import sqlite_broker

TASK_MODULES = [
    "worker.outbox_relay",
    "worker.tasks.gateway",
    "worker.tasks.directory",
]

sqlite_broker.register()
celery_app = Celery("odock_sync", include=TASK_MODULES)


def configure_celery(settings: Settings) -> Celery:
    celery_app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options={"polling_interval": settings.broker_poll_interval},
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
    )
    return celery_app


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        "outbox-relay": {
            "task": "outbox.relay",
            "schedule": timedelta(seconds=settings.outbox_relay_interval),
        },
        "directory-sync-due": {
            "task": "directory.schedule_due",
            "schedule": timedelta(seconds=settings.directory_sync_tick_seconds),
        },
    }
