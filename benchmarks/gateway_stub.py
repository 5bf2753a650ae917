"""A stand-in for Odock's gateway on loopback: acknowledges cache invalidations and appends
`<key id> <epoch seconds received>` per key to a file. Its own process, so the benchmark's
threads never delay the moment a request is seen.

    python benchmarks/gateway_stub.py PORT RECEIPTS_FILE
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

PATH = "/v1/internal/cache/invalidate"


class Handler(BaseHTTPRequestHandler):
    receipts: IO[str]
    lock = threading.Lock()

    def do_POST(self) -> None:
        received = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != PATH:
            self.send_response(404)
            self.end_headers()
            return
        keys = json.loads(body)["key_ids"]
        with self.lock:
            self.receipts.writelines(f"{key} {received:.6f}\n" for key in keys)
            self.receipts.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


def main() -> None:
    port, path = int(sys.argv[1]), Path(sys.argv[2])
    Handler.receipts = path.open("a")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
