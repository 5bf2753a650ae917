"""Gunicorn settings of the web process: `odock-sync serve`, the Procfile and the benchmarks
load them with `-c python:webhooks.gunicorn_conf`."""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(_worker: Any) -> None:
    """Once the app is loaded, keep what it loaded out of the cyclic garbage collector.

    Routes, mappers and cached statements live as long as the worker; a full collection
    walked them all while every thread of the worker waited (86 ms, measured under load at
    500 deliveries/s). Frozen, a full collection takes about 2 ms.
    """
    gc.freeze()
