"""The Flask application factory; nothing runs at import time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response

from models.db import make_session_factory, make_web_engine
from models.observability import configure_logging
from models.settings import Settings, load_settings
from webhooks import (
    console,
    context,
    enroll,
    enroll_sign_in,
    enrollment_hook,
    errors,
    health,
    html_pages,
    idp_hooks,
    odock,
    request_hooks,
    review_links,
    scim,
    tracing,
)
from webhooks.api import (
    audit,
    audit_streams,
    directory,
    event_hooks,
    hooks,
    invitations,
    mass_change,
    openapi,
    recertification,
    reviews,
    sign_in,
    source_health,
    teams,
    tokens,
    users,
)
from worker.celery_app import bound_publishing, configure_celery
from worker.outbox_relay import install_after_commit_relay

BLUEPRINTS = [
    health.bp,
    users.bp,
    teams.bp,
    audit.bp,
    audit_streams.bp,
    source_health.bp,
    openapi.bp,
    reviews.bp,
    recertification.bp,
    hooks.bp,
    review_links.bp,
    invitations.bp,
    enroll.bp,
    enroll_sign_in.bp,
    enrollment_hook.bp,
    idp_hooks.bp,
    event_hooks.bp,
    sign_in.bp,
    scim.bp,
    directory.bp,
    mass_change.bp,
    tokens.bp,
    odock.bp,
    console.bp,
]


# A SCIM base URL entered with a trailing slash ("https://odock.example/scim/v2/"): Entra ID
# and Okta append "/Users" to it as typed. Werkzeug's merge_slashes would answer with a
# redirect built from the Host header (off below), so the join is read as one slash here.
SCIM_DOUBLED_SLASH = scim.PREFIX + "//"


class App(Flask):
    """Flask, remembering which hooks and views are plain functions: it asks inspect for each
    of them on every request (eleven times a SCIM read, 5% of its CPU, profiled)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runnable: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        runnable = self._runnable.get(func)
        if runnable is None:
            runnable = self._runnable[func] = super().ensure_sync(func)
        return runnable

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(SCIM_DOUBLED_SLASH):
            environ["PATH_INFO"] = scim.PREFIX + "/" + path[len(SCIM_DOUBLED_SLASH) :].lstrip("/")
        return super().wsgi_app(environ, start_response)

    def make_default_options_response(self) -> Response:
        """OPTIONS says which methods a route allows, in its Allow header, and nothing else:
        204 without a content type (Flask's is 200 with an empty text/html body), after the
        route's authentication as any request (RFC 9110 section 9.3.7)."""
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings)
    configure_celery(settings)
    bound_publishing(settings.broker_publish_timeout)
    engine = make_web_engine(settings)
    sessions = make_session_factory(engine, odock_mode=settings.odock_mode)
    install_after_commit_relay(sessions, background=settings.outbox_publish_in_background)

    app = App(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Werkzeug would answer `//x` or a missing trailing slash with a 308 whose Location it
    # builds from the Host header; such paths are simply not found.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.redirect_defaults = False
    context.install(app, context.AppState(settings=settings, engine=engine, sessions=sessions))
    errors.register_problem_handlers(app)
    html_pages.install(app)  # the `shown` filter of every page
    request_hooks.install(app, settings)  # request id, input guards, metrics
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    tracing.trace_requests(app, engine)
    return app
