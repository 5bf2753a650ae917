"""The one Celery app. Configured explicitly from the settings; nothing connects at import."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from kombu import Exchange, Queue, pools
from kombu.utils.collections import eqhash

from models.settings import Settings
from worker import redis_broker, sqlite_broker

TASK_MODULES = [
    "worker.outbox_relay",
    "worker.tasks.retention",
    "worker.request_context",
    "worker.tasks.gateway",
    "worker.tasks.cutoffs",
    "worker.tasks.reviews",
    "worker.tasks.notifications",
    "worker.tasks.invitations",
    "worker.tasks.idp_events",
    "worker.tasks.scim",
    "worker.tasks.directory",
    "worker.tasks.odock",
    "worker.tasks.tokens",
    "worker.tasks.odock_reconcile",
    "worker.tasks.audit_streams",
    "worker.tasks.health",
    "worker.tasks.recertification",
    "worker.tasks.access_end",
]

# Tasks that cut access off, or apply directory changes that may: a queue of their own, so
# they never wait behind bulk work (reviews, notifications, full directory syncs, invitation
# mail). An incremental sync reads only what changed, so it is short.
URGENT_TASKS = (
    "gateway.invalidate_keys",
    "odock.send_store_commands",
    "odock.send_key_commands",  # send_store_commands' name before 0033_store_commands
    "cutoffs.reap",
)
# The IdP event drains: a queue and worker of their own. A drain holds its slot for as long as
# its organisation's stream lasts (minutes under a steady one); on the urgent worker it held
# one of the two slots the gateway invalidations it produces must pass through.
DRAIN_TASKS = ("events.drain",)

sqlite_broker.register()
redis_broker.register()
celery_app = Celery("odock_sync", include=TASK_MODULES)


def configure_celery(settings: Settings) -> Celery:
    if celery_app.conf.broker_write_url not in (None, settings.celery_broker_url):
        _forget_broker_connections()
    celery_app.conf.update(
        broker_url=settings.celery_broker_url,
        # Celery lets a CELERY_BROKER_URL environment variable win over broker_url; the read
        # and write URLs win over that, so the Settings object given here is what counts.
        broker_read_url=settings.celery_broker_url,
        broker_write_url=settings.celery_broker_url,
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=settings.celery_queue,
        # A worker started without -Q consumes both; `serve` gives each its own worker.
        task_queues=[_queue(name) for name in worker_queues(settings.celery_queue)],
        task_routes=(route_urgent,),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options={
            "polling_interval": settings.broker_poll_interval,
            # A publish with the broker down fails at once instead of retrying for seconds
            # (6 s per message on Redis): a request never waits on the broker, and what could
            # not be published stays in the outbox for the relay.
            "max_retries": 0,
        },
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
    )
    return celery_app


def _forget_broker_connections() -> None:
    """Celery keeps its connection pool and producer pool for the broker it first connected
    to: a process configured again for another broker (a CLI command's settings, a test's own
    redis-server) would go on publishing to the first one, or, once that is gone, fail every
    publish. The first broker's pools are closed and forgotten (kombu keeps them in a registry
    by broker, where the next configuration for it would find them closed); the next publish
    builds them for the new broker."""
    first = celery_app.connection_for_write()
    for group in (pools.producers, pools.connections):
        pool = dict.pop(group, eqhash(first), None)
        if pool is not None:
            pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def bound_publishing(seconds: float) -> None:
    """In a process that only publishes (the web): every broker read and write gives up after
    this long. Without it a broker that accepts connections and never answers holds the
    publisher for good (redis-py waits without limit); workers keep the transport's defaults.
    Redis only: the embedded broker is a local file, and kombu's SQLAlchemy transport hands
    every option to `create_engine`, which refuses socket options."""
    publishing_to = celery_app.conf.broker_write_url or celery_app.conf.broker_url
    if not str(publishing_to).startswith(("redis://", "rediss://")):
        return
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
    }


def route_urgent(
    name: str, _args: Any, kwargs: dict[str, Any] | None, _options: Any, **_rest: Any
) -> dict[str, str] | None:
    """Celery's router: urgent tasks to the urgent queue, drains to the drain queue, the rest
    to the default one."""
    incremental = name == "directory.sync" and (kwargs or {}).get("kind") == "incremental"
    default = str(celery_app.conf.task_default_queue)
    if name in URGENT_TASKS or incremental:
        return {"queue": urgent_queue(default)}
    if name in DRAIN_TASKS:
        return {"queue": drain_queue(default)}
    return None


def urgent_queue(queue: str) -> str:
    return f"{queue}.urgent"


def drain_queue(queue: str) -> str:
    return f"{queue}.drain"


def worker_queues(queue: str) -> list[str]:
    """The queues a worker that does everything consumes, the urgent one first."""
    return [urgent_queue(queue), drain_queue(queue), queue]


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name), routing_key=name)


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    return _always(settings) | _odock_reconcile(settings)


def _odock_reconcile(settings: Settings) -> dict[str, dict[str, object]]:
    """The reconcile with Odock's management plane, in bridged mode once it has an address."""
    if settings.odock_mode != "bridged" or not settings.odock_management_url:
        return {}
    return {
        "odock-reconcile": {
            "task": "odock.reconcile_due",
            "schedule": timedelta(seconds=settings.odock_reconcile_interval),
        }
    }


def _reapers(settings: Settings) -> dict[str, dict[str, object]]:
    """The cut-off reaper on the urgent queue, and once more on the default one: whichever
    worker is up reaps (`serve` runs one per queue), so a cut-off never waits for one queue's
    worker. Two reapers at once are safe: each key is leased to one caller, and an incident
    opens once (models/actions/cutoffs.py)."""
    # Reaps queued while no worker ran are stale: the next one does their work.
    expires = max(settings.cutoff_reap_interval * 2, 5.0)
    every = timedelta(seconds=settings.cutoff_reap_interval)
    return {
        "cutoffs-reap": {
            "task": "cutoffs.reap",
            "schedule": every,
            "options": {"expires": expires},
        },
        "cutoffs-reap-default-queue": {
            "task": "cutoffs.reap",
            "schedule": every,
            "options": {"expires": expires, "queue": settings.celery_queue},
        },
    }


def _always(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        "outbox-relay": {
            "task": "outbox.relay",
            "schedule": timedelta(seconds=settings.outbox_relay_interval),
        },
        **_reapers(settings),
        "access-end-due": {
            "task": "access.end_due",
            "schedule": timedelta(seconds=settings.access_end_tick_seconds),
            # Ticks queued while no worker ran are stale: the next one catches up on them all.
            "options": {"expires": max(settings.access_end_tick_seconds * 2, 5.0)},
        },
        "outbox-purge-completed": {
            "task": "outbox.purge_completed",
            "schedule": timedelta(hours=1),
        },
        "cutoffs-purge-acknowledged": {
            "task": "cutoffs.purge_acknowledged",
            "schedule": timedelta(hours=1),
        },
        "odock-tombstones-purge": {
            "task": "odock.purge_tombstones",
            "schedule": timedelta(hours=1),
        },
        "reviews-sweep": {
            "task": "reviews.sweep",
            "schedule": timedelta(seconds=settings.review_sweep_interval),
        },
        "reviews-escalate": {
            "task": "reviews.escalate",
            "schedule": timedelta(seconds=settings.review_escalation_check_interval),
        },
        "invitations-expire": {
            "task": "invitations.expire_overdue",
            "schedule": timedelta(seconds=settings.invitation_expiry_interval),
        },
        "events-wake-waiting": {
            "task": "events.wake_waiting",
            "schedule": timedelta(seconds=settings.event_drain_sweep_interval),
        },
        "scim-purge-deleted": {"task": "scim.purge_deleted", "schedule": timedelta(hours=1)},
        "tokens-note-expired": {"task": "tokens.note_expired", "schedule": timedelta(minutes=1)},
        "audit-streams-tick": {
            "task": "audit.stream_tick",
            "schedule": timedelta(seconds=settings.audit_stream_tick_seconds),
        },
        "health-check-sources": {
            "task": "health.check_sources",
            "schedule": timedelta(seconds=settings.source_health_check_seconds),
        },
        "recertification-open-due": {
            "task": "recertification.open_due",
            "schedule": timedelta(seconds=settings.recertification_tick_seconds),
        },
        "recertification-enforce-due": {
            "task": "recertification.enforce_due",
            "schedule": timedelta(seconds=settings.recertification_tick_seconds),
        },
        "directory-sync-due": {
            "task": "directory.schedule_due",
            "schedule": timedelta(seconds=settings.directory_sync_tick_seconds),
        },
    }
