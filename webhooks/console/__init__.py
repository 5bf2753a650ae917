"""The web console at /console: server-rendered pages for admins and managers (docs/console.md).

Each module adds its pages to the one blueprint; importing them here registers the routes.
"""

from webhooks.console import (
    audit,
    deliveries,
    departures,
    holds,
    oidc,
    overview,
    people,
    recertification,
    reviews,
    runs,
    sign_in,
)
from webhooks.console.web import bp

__all__ = [
    "audit",
    "bp",
    "deliveries",
    "departures",
    "holds",
    "oidc",
    "overview",
    "people",
    "recertification",
    "reviews",
    "runs",
    "sign_in",
]
