"""Gunicorn settings of the web process: `odock-sync serve`, the Procfile and the benchmarks
load them with `-c python:webhooks.gunicorn_conf`.

The worker reads every request whole in its event loop before a thread takes it
(webhooks/buffering_worker.py): slow or silent clients cost a socket each, not a thread, and
cannot starve /healthz. `--threads` still sets the threads of each worker."""

from __future__ import annotations

import gc
import os
import tempfile
from typing import Any

from prometheus_client import multiprocess

worker_class = "webhooks.buffering_worker.BufferingWorker"
worker_connections = 1000  # per worker: open connections, most of them waiting cost nothing
keepalive = 5  # seconds an idle kept-alive connection stays open
timeout = 30  # a worker whose event loop is silent this long is restarted

# Gunicorn's control socket (for `gunicornc`) is one path per user by default
# (~/.gunicorn/gunicorn.ctl): a second instance on the machine took it over from the first.
# One per instance instead, named by the master's pid (this file is read by the master).
control_socket = os.path.join(
    os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
    f"odock-sync-gunicorn-{os.getpid()}.ctl",
)


def on_starting(_server: Any) -> None:
    """Check the settings in the master, before it listens: a bad one stops gunicorn with one
    line and exit 1, where each worker would log its traceback and the master say only
    "Worker failed to boot"."""
    from models.settings import SettingsError, load_settings
    from worker.tracing import tracing_config

    try:
        load_settings()
        tracing_config(os.environ, process="web")
    except SettingsError as exc:
        raise SystemExit(f"odock-sync: {exc}") from None


def post_worker_init(_worker: Any) -> None:
    """Once the app is loaded, keep what it loaded out of the cyclic garbage collector.

    Routes, mappers and cached statements live as long as the worker; a full collection
    walked them all while every thread of the worker waited (86 ms, measured under load at
    500 deliveries/s). Frozen, a full collection takes about 2 ms.
    """
    gc.freeze()


def child_exit(_server: Any, worker: Any) -> None:
    """A web worker that exits leaves its figures behind, not its live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
