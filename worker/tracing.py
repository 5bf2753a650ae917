"""Optional OpenTelemetry traces of tasks and their SQL, exported over OTLP/HTTP.

Off unless the standard `OTEL_*` variables ask for traces; then nothing of OpenTelemetry is
imported and nothing is patched. On, each process that does the work (a gunicorn worker, a
Celery pool process) gets its own tracer provider and exporter thread: a provider made before
a fork would leave the children's exporter thread behind in the parent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from models.settings import SettingsError

DEFAULT_SERVICE_NAME = "odock-sync"
SUPPORTED_EXPORTERS = ("otlp", "console")
SUPPORTED_PROTOCOL = "http/protobuf"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


@dataclass(frozen=True)
class TracingConfig:
    """What the environment asks for; the exporter reads its own details (endpoint, headers,
    timeout, compression) and the SDK its sampler and batching from the same variables."""

    exporter: str
    process: str


def tracing_config(environ: Mapping[str, str], *, process: str) -> TracingConfig | None:
    """The traces asked for, or None when they are off; a request we cannot honour fails fast."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or not (exporter or any(environ.get(v) for v in ENDPOINT_VARIABLES)):
        return None
    exporter = exporter or "otlp"
    if exporter not in SUPPORTED_EXPORTERS:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: {exporter!r} is not supported; use one of "
            f"{', '.join(SUPPORTED_EXPORTERS)} or none"
        )
    protocol = next((environ[v] for v in PROTOCOL_VARIABLES if environ.get(v)), SUPPORTED_PROTOCOL)
    if exporter == "otlp" and protocol.strip().lower() != SUPPORTED_PROTOCOL:
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; odock-sync exports "
            f"traces as {SUPPORTED_PROTOCOL} (the OTLP/HTTP default)"
        )
    return TracingConfig(exporter=exporter, process=process)


_started_in_pid: int | None = None


def start_tracing(*, process: str, engine: Engine | None = None) -> bool:
    """Trace this process's tasks (and `engine`'s SQL) if the environment asks; once per process.

    Returns whether traces are on. The Celery instrumentation both starts a span for each task
    run and puts the current trace context into each task published, so a task enqueued by a
    request continues the request's trace.
    """
    global _started_in_pid
    config = tracing_config(os.environ, process=process)
    if config is None:
        return False
    if _started_in_pid != os.getpid():
        _install_provider(config)
        _instrument_celery()
        _started_in_pid = os.getpid()
    if engine is not None:
        _instrument_engine(engine)
    return True


def _install_provider(config: TracingConfig) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours is the default.
    resource = Resource.create({"odock.process": config.process})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(config.exporter)))
    trace.set_tracer_provider(provider)


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _instrument_celery() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from worker.celery_app import celery_app

    # The publish span is closed only for a task this process knows by name; the web process
    # publishes by name (send_task), so it loads the task modules as the worker does.
    celery_app.loader.import_default_modules()
    CeleryInstrumentor().instrument()


def _instrument_engine(engine: Engine) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # One engine per process (the app's, or the worker's runtime); a second call is a no-op.
    # The instrumentation declares SQLAlchemy < 2.1 and would silently do nothing on our 2.1;
    # its engine events are unchanged in 2.1 (tests/ops/test_tracing.py checks the SQL spans).
    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
