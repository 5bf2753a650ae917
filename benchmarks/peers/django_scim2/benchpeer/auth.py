"""Bearer token against a setting: request.user is set only when it matches."""

import os
import secrets
from collections.abc import Callable
from typing import Any

TOKEN = os.environ.get("PEER_TOKEN", "")


class ServiceUser:
    is_authenticated = True


class BearerTokenMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if TOKEN and secrets.compare_digest(given, TOKEN):
            request.user = ServiceUser()
        return self.get_response(request)
