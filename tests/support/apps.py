"""One web app per distinct settings for the whole run, instead of one per test.

Building an app compiles its ~150 URL rules, which cost more than most tests themselves. No
test changes an app (its state is the settings, an engine and the routes); what a test
changes lives in the database, which `clean_db` empties, and each test gets a new client.

Each app has a pool of its own, which keeps the connections it opened. A file whose fixture
builds an app per test (settings naming a port of the test's own) left two idle connections per
test for the rest of the run: dozens per xdist worker, and the suites of several checkouts
share one PostgreSQL's 100 clients. Once they were used up, the next new app's first request
(the SCIM create of tests/faults/test_network_calls_hold_no_lock.py's fixture) could not
connect ("sorry, too many clients already") and was answered 503 "database busy". So building
an app first lets go of the others' idle connections; an earlier app still works, reconnecting
when used again.
"""

from __future__ import annotations

from flask import Flask

from models.observability import configure_logging
from models.settings import Settings
from worker.celery_app import configure_celery


class Apps:
    def __init__(self) -> None:
        self._built: dict[str, Flask] = {}

    def for_settings(self, settings: Settings) -> Flask:
        """The app of these settings, with the process configured for them as `create_app`
        does (an app with other settings may have reconfigured logging and Celery since)."""
        from webhooks.app import create_app

        key = settings.model_dump_json()
        app = self._built.get(key)
        if app is None:
            self.dispose_pools()
            app = create_app(settings)
            app.config["TESTING"] = True
            self._built[key] = app
        else:
            configure_logging(settings)
            configure_celery(settings)
        return app

    def dispose_pools(self) -> None:
        """Start every app's pool afresh: its idle connections closed (after a test dropped
        the database's connections, or before another app opens its own); one in use is
        closed when given back."""
        from webhooks.context import EXTENSION

        for app in self._built.values():
            app.extensions[EXTENSION].engine.dispose()

    def close(self) -> None:
        """Close every app's pooled connections (PostgreSQL has a cap)."""
        from webhooks.context import EXTENSION

        for app in self._built.values():
            app.extensions[EXTENSION].engine.dispose()
        self._built.clear()
