"""Optional OpenTelemetry traces of requests (see worker/tracing.py for when they are on)."""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import Engine

from worker.tracing import start_tracing

# Probes and scrapes come every few seconds and tell nothing; OTEL_PYTHON_FLASK_EXCLUDED_URLS
# (the instrumentation's own variable) replaces this list.
UNTRACED_PATHS = "healthz,readyz,metrics"


def trace_requests(app: Flask, engine: Engine) -> None:
    """A server span per request, with the SQL it runs and the tasks it enqueues inside."""
    if not start_tracing(process="web", engine=engine):
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    excluded = os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS", UNTRACED_PATHS)
    FlaskInstrumentor().instrument_app(app, excluded_urls=excluded)
