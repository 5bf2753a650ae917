"""The ceiling for the IdP events load benchmark: the same route under the same gunicorn
settings, answering at once without verifying or storing anything."""

from __future__ import annotations

from flask import Flask, request


def create_bare_app() -> Flask:
    app = Flask(__name__)

    @app.post("/hooks/events/<slug>")
    def accept(slug: str) -> tuple[dict[str, str], int]:
        request.get_data()
        return {"status": "accepted", "delivery_id": request.headers.get("webhook-id", "")}, 202

    return app
