"""The app-wide hooks of every request, as one before, one after and one teardown hook.

Flask dispatches each hook on its own (the request's blueprints looked up, ensure_sync, the
context's proxies resolved in each): the request id, the query guard and the request metrics
were six hooks of a SCIM read's ten. In the order they ran as six: the id first, so every
later hook, audit event and log line sees it; the query guard before anything reads the
query; the metrics counted before the id is echoed; the arrival ended before the id unbound.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from models.settings import Settings
from webhooks import body, body_limits, health, request_id, route_credentials


def install(app: Flask, settings: Settings) -> None:
    """The hooks, with the app's settings held (the app's one object: read on every request,
    the lookup through current_app was a tenth of the hooks' CPU)."""
    observe = health.request_observer(settings.log_level)

    @app.before_request
    def _begin() -> None:
        state = g._get_current_object()
        req = request._get_current_object()  # type: ignore[attr-defined]
        request_id.begin(state, req)
        body.check_query(req)  # every protocol refuses the same hostile queries
        body.check_path(req)  # and paths
        body.check_headers(req)  # and header values
        body.check_content_encoding(req)  # and reads no body it cannot decode
        # nor more of one than its route takes
        body.limit_request_body(state, req, body_limits.body_limit(settings, req.path))
        if route_credentials.expects_continue(req):  # as the web worker does before its 100
            route_credentials.refuse_absent_credentials(req)
        health.start_timer(state)

    @app.after_request
    def _answer(response: Response) -> Response:
        state = g._get_current_object()
        observe(state, request._get_current_object(), response)  # type: ignore[attr-defined]
        request_id.echo(state, response)
        return response

    @app.teardown_request
    def _end(_error: BaseException | None) -> None:
        state = g._get_current_object()
        health.end_arrival(state)
        request_id.end(state)
