"""Slow clients cannot starve the web tier: /healthz keeps answering while a few hundred
connections trickle their requests a byte at a time (loopback only, bounded to seconds: the
web here reads with timeouts shorter than the defaults, so the attack outlasts them sooner)."""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from models.settings import Settings
from tests.support.served import WebProcess as Web
from tests.support.served import web_as_served

SLOW_HEADERS = 150  # request line, then a header byte every second, never the blank line
SLOW_BODIES = 100  # whole head, a 10,000-byte body declared, one byte a second
SILENT = 50  # connect and send nothing
IDLE_TIMEOUT = 2  # seconds (WEB_IDLE_TIMEOUT; 10 by default)
READ_TIMEOUT = 4  # seconds (WEB_REQUEST_READ_TIMEOUT; 20 by default)
WORKERS, THREADS = 2, 8
# The attack goes on until the server has dropped every slow connection (past both timeouts);
# past this the test calls the server hung (not a speed check: a loaded machine is slow).
HANG_GUARD = 120
PROBE_EVERY = 0.5


@pytest.fixture(scope="module")
def web(settings: Settings, engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """The web process exactly as `odock-sync serve` starts it (2 workers x 8 threads), one
    for the file: the tests read no state of it but its answers."""
    env = {"WEB_IDLE_TIMEOUT": str(IDLE_TIMEOUT), "WEB_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT)}
    workdir = tmp_path_factory.mktemp("web")
    with web_as_served(settings, workdir, workers=WORKERS, threads=THREADS, env=env) as served:
        yield served


@dataclass
class Attacker:
    """Slow connections driven by one selector; each sends its next byte once a second."""

    port: int
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    pending: dict[socket.socket, bytes] = field(default_factory=dict)
    closed_by_server: int = 0
    refused_with_408: int = 0

    def open(self, first: bytes, rest: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if first:
            sock.sendall(first)
        sock.setblocking(False)
        self.pending[sock] = rest
        self.selector.register(sock, selectors.EVENT_READ)

    def tick(self) -> None:
        """Send one more byte on every connection the server has not closed."""
        self.read_answers(0)  # first take in what the server answered before it closed
        for sock, rest in list(self.pending.items()):
            if not rest:
                continue
            try:
                sock.send(rest[:1])
                self.pending[sock] = rest[1:]
            except OSError:
                self._closed(sock, b"")

    def read_answers(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                answer = sock.recv(4096)
            except OSError:
                answer = b""
            self._closed(sock, answer)

    def _closed(self, sock: socket.socket, answer: bytes) -> None:
        self.closed_by_server += 1
        self.refused_with_408 += answer.startswith(b"HTTP/1.1 408")
        self.selector.unregister(sock)
        self.pending.pop(sock)
        sock.close()

    def close(self) -> None:
        for sock in list(self.pending):
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()


@pytest.mark.slow
def test_healthz_answers_while_hundreds_of_clients_trickle(web: Web) -> None:
    attacker = Attacker(web.port)
    trickle = b"X-Slow: " + b"a" * 200 + b"\r\n"
    try:
        for n in range(SLOW_HEADERS):
            attacker.open(f"GET /healthz?slow={n} HTTP/1.1\r\n".encode(), trickle)
        for n in range(SLOW_BODIES):
            head = (
                f"POST /api/v1/teams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f'Content-Length: 10000\r\n\r\n{{"name": "slow{n}"'
            ).encode()
            attacker.open(head, b" " * 200)
        for _ in range(SILENT):
            attacker.open(b"", b"")
        probes, failures, answered_under_siege = 0, [], 0
        next_tick = time.monotonic()
        hung_at = next_tick + HANG_GUARD
        while attacker.pending and time.monotonic() < hung_at:
            if time.monotonic() >= next_tick:
                attacker.tick()
                next_tick += 1.0
            try:
                answer = requests.get(f"http://127.0.0.1:{web.port}/healthz", timeout=HANG_GUARD)
                if answer.status_code != 200:
                    failures.append(answer.status_code)
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            probes += 1
            attacker.read_answers(0)  # what the server closed while the probe was answered
            if not failures and len(attacker.pending) > WORKERS * THREADS:
                answered_under_siege += 1
            attacker.read_answers(PROBE_EVERY)
    finally:
        attacker.close()
    assert failures == [], f"{len(failures)} of {probes} probes failed: {failures[:5]}"
    # Answered while more slow connections were open than the web has threads: they hold
    # none (a web they starved answers only once it has dropped them), however slowly a
    # loaded machine runs the probes.
    assert answered_under_siege >= 1
    # Past the read timeout the server dropped the slow ones, answering 408 to those that
    # had started a request.
    total = SLOW_HEADERS + SLOW_BODIES + SILENT
    assert attacker.closed_by_server == total
    assert attacker.refused_with_408 == SLOW_HEADERS + SLOW_BODIES


def _raw(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_line, headers, body


def test_requests_refused_before_the_app_are_problem_json(web: Web) -> None:
    too_long = b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    big_head = b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n"
    big_body = b"POST /api/v1/teams HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"
    for request, status in ((too_long, 414), (big_head, 431), (big_body, 413)):
        status_line, headers, body = _raw(web.port, request)
        assert status_line.startswith(f"HTTP/1.1 {status} "), status_line
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == status
    # What gunicorn's own parser refuses is problem JSON as well (it was gunicorn's HTML page)
    big_field = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
    many_fields = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 150 + b"\r\n"
    bad_line = b"GARBAGE\r\nHost: x\r\n\r\n"
    bad_name = b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n"
    coding = b"POST /api/v1/teams HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    for request, status in (
        (big_field, 431),
        (many_fields, 431),
        (bad_line, 400),
        (bad_name, 400),
        (coding, 400),
    ):
        status_line, headers, body = _raw(web.port, request)
        assert status_line.startswith(f"HTTP/1.1 {status} "), (request[:40], status_line)
        assert headers["content-type"] == "application/problem+json", request[:40]
        problem = json.loads(body)
        assert problem["status"] == status and problem["title"] and problem["detail"]
    # a request just under the limit is served
    status_line, _, _ = _raw(
        web.port,
        b"GET /healthz?" + b"a" * 4000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert status_line.startswith("HTTP/1.1 200")
