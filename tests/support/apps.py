"""One web app per distinct settings for the whole run, instead of one per test.

Building an app compiles its ~150 URL rules, which cost more than most tests themselves. No
test changes an app (its state is the settings, an engine and the routes); what a test
changes lives in the database, which `clean_db` empties, and each test gets a new client.
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
            app = create_app(settings)
            app.config["TESTING"] = True
            self._built[key] = app
        else:
            configure_logging(settings)
            configure_celery(settings)
        return app

    def dispose_pools(self) -> None:
        """Start every app's pool afresh (after a test dropped the database's connections)."""
        from webhooks.context import EXTENSION

        for app in self._built.values():
            app.extensions[EXTENSION].engine.dispose()

    def close(self) -> None:
        """Close every app's pooled connections (PostgreSQL has a cap)."""
        from webhooks.context import EXTENSION

        for app in self._built.values():
            app.extensions[EXTENSION].engine.dispose()
        self._built.clear()
