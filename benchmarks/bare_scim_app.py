"""The ceiling for the SCIM benchmark: a bare Flask app under the same gunicorn settings as
odock-sync, answering a SCIM-shaped GET with a small fixed User document. No database, no
token lookup (only the header's presence), no serialisation beyond one `json.dumps`."""

from __future__ import annotations

import json

from flask import Flask, Response, request

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def create_bare_scim_app() -> Flask:
    app = Flask(__name__)

    @app.get("/scim/v2/Users/<scim_id>")
    def get_user(scim_id: str) -> Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return Response(status=401)
        document = {
            "schemas": [USER],
            "id": scim_id,
            "userName": "user@example.com",
            "name": {"givenName": "Given", "familyName": "Family"},
            "emails": [{"value": "user@example.com", "type": "work", "primary": True}],
            "active": True,
            "meta": {"resourceType": "User", "version": 'W/"1"'},
        }
        return Response(json.dumps(document), mimetype="application/scim+json")

    @app.get("/scim/v2/ServiceProviderConfig")
    def service_provider_config() -> Response:
        return Response("{}", mimetype="application/scim+json")

    return app
