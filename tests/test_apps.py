"""The suite's web apps (tests/support/apps.py): building one lets go of the idle connections
the others keep. Before, each app built for a test's own settings kept its pool's connections
for the rest of the run, and a file building one per test used up PostgreSQL's clients, shared
by the suites of several checkouts: a new app's first request then could not connect and was
answered 503 "database busy"."""

from __future__ import annotations

from flask import Flask

from models.settings import Settings
from tests.support.apps import Apps
from webhooks.context import EXTENSION


def idle_connections(app: Flask) -> int:
    return int(app.extensions[EXTENSION].engine.pool.checkedin())


def test_an_app_built_for_other_settings_leaves_no_idle_connection_behind(
    apps: Apps, settings: Settings, clean_db: None
) -> None:
    built = []
    for number in range(4):
        app = apps.for_settings(settings.model_copy(update={"max_body_bytes": 4096 + number}))
        assert app.test_client().get("/readyz").status_code == 200  # opens a connection
        built.append(app)
    assert [idle_connections(app) for app in built] == [0, 0, 0, 1]
    assert built[0].test_client().get("/readyz").status_code == 200  # reconnects
