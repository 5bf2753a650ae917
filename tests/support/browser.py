"""Helpers for tests in a real browser: a live app, axe-core checks, screenshots."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

# axe-core 4.10.2 from the npm registry (`npm pack axe-core@4.10.2`), MPL-2.0, unchanged;
# sha256 b511cd9dec01c76f4b2ad1723b66b6db37d4c2eb4ed199076e1829d9ee7b75e3.
AXE = Path(__file__).with_name("axe.min.js")
BLOCKING_IMPACTS = ("serious", "critical")
REPO = Path(__file__).resolve().parents[2]


def screenshot_dir() -> Path:
    """Where browser tests leave their screenshots for a person to look at:
    $CONSOLE_SCREENSHOT_DIR, or build/console-screenshots/ in the checkout."""
    chosen = Path(
        os.environ.get("CONSOLE_SCREENSHOT_DIR") or REPO / "build" / "console-screenshots"
    )
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on a loopback port (a real HTTP server in a thread); yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each.

    Injected through the browser's debugging protocol, so the page's own Content Security
    Policy (no inline or foreign scripts) stays as it is served."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING_IMPACTS
    ]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass
