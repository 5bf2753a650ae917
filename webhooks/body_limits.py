"""How large a body each route takes, in one place: read by the app before anything reads a
body (webhooks.body.limit_body, from webhooks.request_hooks) and by the web worker
(webhooks.buffering_worker), which refuses a larger one as it arrives: a Content-Length over the
limit before it answers `Expect: 100-continue` or reads the body, a chunked body once its chunks
pass the limit. By path, as both see it (PATH_INFO), so both apply the same limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.settings import Settings

OBJECT_MAX_BYTES = 64 * 1024  # an Odock key, budget or quota
USAGE_MAX_BYTES = 4 * 1024 * 1024  # 5,000 records of a few hundred bytes each


def body_limit(settings: Settings, path: str) -> int:
    """The most bytes a request to `path` may send as its body."""
    if path.startswith("/enroll/"):
        return settings.enrollment_max_form_bytes  # the invitee's form: a name and a key
    if path.startswith(("/hooks/okta/", "/hooks/events/")):
        return settings.event_max_body_bytes
    if path.startswith("/odock/v1/"):
        return _odock_limit(settings, path)
    return settings.max_body_bytes


def _odock_limit(settings: Settings, path: str) -> int:
    if path.endswith("/usage"):
        return USAGE_MAX_BYTES
    if path.endswith("/events"):
        return settings.event_max_body_bytes
    return OBJECT_MAX_BYTES
