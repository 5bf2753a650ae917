"""What every HTML page of the service sends: pages reached by a link that carries a secret
token (enrollment, review acknowledgement) are never cached, framed, or referred onwards."""

from __future__ import annotations

from flask import Response

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
