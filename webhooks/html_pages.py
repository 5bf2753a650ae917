"""What every HTML page of the service sends: pages reached by a link that carries a secret
token (enrollment, review acknowledgement) are never cached, framed, or referred onwards; and
how a page shows a name someone else chose."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from markupsafe import Markup

from models.text import visible

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def harden(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def shown(value: Any) -> Markup:
    """A name, email, DN or message holding one, as a page shows it (`{{ x | shown }}`):
    isolated from the text around it (<bdi>: right-to-left text keeps to its own place) and
    its invisible or direction-changing characters marked (models.text.visible)."""
    if value is None or value == "":
        return Markup("")
    return Markup("<bdi>{}</bdi>").format(visible(str(value)))


def shown_plain(value: Any) -> str:
    """The same for places that hold text only (an attribute, <title>, <option>)."""
    return "" if value is None else visible(str(value))


def install(app: Flask) -> None:
    app.add_template_filter(shown, "shown")
    app.add_template_filter(shown_plain, "shown_plain")
