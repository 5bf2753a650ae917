"""A gunicorn worker that reads each request whole before a thread takes it.

gunicorn's threaded worker hands a connection to a thread as soon as it is accepted; the
thread then reads the request line, headers and body with blocking calls. A client that sends
a byte at a time (or nothing) holds that thread, and a few dozen such clients hold them all:
health probes stop answering. This worker keeps gunicorn's event loop, thread pool and
keep-alive handling, but reads every request in the event loop (non-blocking, into memory)
and gives a thread only a complete one. A slow client then costs a socket and a buffer, not a
thread, and is dropped when its request takes longer than WEB_REQUEST_READ_TIMEOUT (a setting;
a connection that sends nothing, after WEB_IDLE_TIMEOUT).

It also answers the requests it refuses itself: a request line over `limit_request_line`
(414), a head over the header limits (431), a body over its route's limit (413, by
webhooks.body_limits: a Content-Length over it before `Expect: 100-continue` is answered, a
chunked body once its chunks pass it), a head asking for `100 Continue` without its route's
credentials in a shape that can succeed (401, by webhooks.route_credentials: the body is never
read), a request not read in time (408), and what gunicorn's parser refuses. Each refusal
is rendered by the app's own error handlers for the request's path, so it is in the format of
the protocol that path speaks (SCIM error JSON, an HTML page, problem JSON), as a refusal of
the app is.

TLS is not terminated here (a deployment's front does that); with `certfile` set the worker
falls back to gunicorn's own reading.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import re
import selectors
import socket
import time
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from gunicorn import util as gunicorn_util
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.workers.gthread import ThreadWorker

from webhooks.body_limits import body_limit

if TYPE_CHECKING:
    from flask import Flask, Response

MAX_HEAD_BYTES = 64 * 1024
# What a Content-Length and a chunk size are made of (RFC 9112 sections 6.3 and 7.1).
DIGITS = re.compile(rb"[0-9]+")
HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
RECV_SIZE = 64 * 1024

REASONS = {
    408: ("Request Timeout", "request_timeout", "the request was not received in time"),
    413: (
        "Content Too Large",
        "request_entity_too_large",
        "the request body is larger than this service accepts",
    ),
    414: ("URI Too Long", "uri_too_long", "the request line is too long"),
    431: (
        "Request Header Fields Too Large",
        "request_header_fields_too_large",
        "the request headers are too large",
    ),
}


class Incomplete:
    """Not a whole request yet."""


INCOMPLETE = Incomplete()


def request_end(buffer: bytes | bytearray, *, line_limit: int, max_body: int) -> int | Incomplete:
    """Where the first request in `buffer` ends; INCOMPLETE; or an HTTP status to refuse with
    (a negative number, -status, so it cannot be mistaken for an offset).

    A request framed in a way gunicorn's parser refuses (a bare LF, a Content-Length that is
    not ASCII digits or is given twice, a transfer coding that does not end in chunked, a chunk
    size that is not hex digits) ends where that is seen: handed over at once, it is refused
    there (400), rather than waited on until the read timeout (408)."""
    line_end = buffer.find(b"\n")
    if (line_end < 0 and len(buffer) > line_limit) or line_end > line_limit + 1:
        return -414
    head_end = buffer.find(b"\r\n\r\n")
    head = bytes(buffer[: head_end if head_end >= 0 else len(buffer)])
    if head.count(b"\n") != head.count(b"\r\n"):
        return len(head)  # a bare LF: the head never ends as gunicorn reads it
    if head_end < 0:
        return -431 if len(buffer) > MAX_HEAD_BYTES else INCOMPLETE
    if head_end > MAX_HEAD_BYTES:
        return -431
    body_start = head_end + 4
    headers = _headers(head)
    codings = [
        coding.strip().lower()
        for value in headers.get(b"transfer-encoding", [])
        for coding in value.split(b",")
    ]
    lengths = headers.get(b"content-length", [])
    if codings:
        if codings[-1] != b"chunked" or lengths:
            return body_start
        return _chunked_end(buffer, body_start, max_body)
    if len(lengths) > 1 or (lengths and not DIGITS.fullmatch(lengths[0])):
        return body_start
    length = int(lengths[0]) if lengths else 0
    if length > max_body:
        return -413
    return body_start + length if len(buffer) >= body_start + length else INCOMPLETE


def _headers(head: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def _chunked_end(buffer: bytes | bytearray, start: int, max_body: int) -> int | Incomplete:
    position, total = start, 0
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return -431 if len(buffer) - position > 1024 else INCOMPLETE
        size_text = bytes(buffer[position:line_end]).split(b";")[0].strip()
        # Hex digits only: int() also reads a sign, "0x" and "_", and a negative size sent
        # the scan back over the same line forever (the worker's event loop, until the
        # arbiter killed the worker).
        if not HEX_DIGITS.fullmatch(size_text):
            return line_end + 2  # malformed: gunicorn's parser refuses it
        size = int(size_text, 16)
        total += size
        if total > max_body:
            return -413
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return trailer_end + 4 if trailer_end >= 0 else INCOMPLETE
        position = line_end + 2 + size + 2
        if len(buffer) < position:
            return INCOMPLETE


# What gunicorn's own parser refuses (a header over limit_request_field_size, more than
# limit_request_fields headers, a malformed request line or header, an unsupported transfer
# coding), by status: answered as problem JSON too, never gunicorn's HTML page.
PARSER_TITLES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


# The path of the request a worker thread is answering: gunicorn's error handling, which
# writes what its parser refuses, is not given the request.
ANSWERING_PATH: ContextVar[str] = ContextVar("answering_path", default="/")


def request_path(buffer: bytes | bytearray) -> str:
    """The path of the first request in `buffer`, as PATH_INFO holds it (percent-decoded,
    each byte a latin-1 character); "/" when its request line names none."""
    line = bytes(buffer[:8192]).split(b"\n", 1)[0]
    parts = line.split(b" ")
    target = parts[1] if len(parts) > 2 else b"/"
    if b"://" in target:  # absolute form: http://host/path
        target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
    return unquote_to_bytes(target.split(b"?", 1)[0]).decode("latin-1")


def rendered_refusal(app: Flask, status: int, detail: str, path: str) -> bytes:
    """The refusal as the app answers one on `path` (its protocol's error renderer), as
    the bytes of a whole response that closes the connection."""
    from werkzeug.exceptions import HTTPException, default_exceptions

    from webhooks.errors import http_problem, render_error

    kind = default_exceptions.get(status, HTTPException)
    error = kind(description=detail[:200] or None)
    error.code = status
    with app.test_request_context("/", environ_overrides={"PATH_INFO": path}):
        return closing_response(render_error(http_problem)(error))


def credentials_refusal(app: Flask, head: bytes, path: str) -> bytes | None:
    """The route's own 401 for a head whose credentials are absent or malformed
    (webhooks.route_credentials, as the app asks it), as the bytes of a whole response that
    closes the connection; None when they may authenticate."""
    from flask import request

    from webhooks.route_credentials import MissingCredentials, refuse_absent_credentials

    method = head.split(b" ", 1)[0].decode("latin-1")
    fields = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in _headers(head).items()
        if name not in BODY_FRAMING
        for value in values
    ]
    context = app.test_request_context(
        "/", method=method, headers=fields, environ_overrides={"PATH_INFO": path}
    )
    with context:
        try:
            refuse_absent_credentials(request)
        except MissingCredentials as missing:
            return closing_response(app.make_response(app.handle_user_exception(missing)))
    return None


# Not the app's to see in a head it is asked about: it reads no body here.
BODY_FRAMING = (b"content-length", b"transfer-encoding", b"content-type")


def closing_response(response: Response) -> bytes:
    from werkzeug.http import HTTP_STATUS_CODES

    body = response.get_data()
    kept = [
        f"{name}: {value}\r\n"
        for name, value in response.headers.items()
        if name.lower() not in ("content-length", "connection")
    ]
    status = response.status_code
    head = (
        f"HTTP/1.1 {status} {HTTP_STATUS_CODES.get(status, '')}\r\n{''.join(kept)}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def problem_response(status: int, reason: str = "", detail: str = "") -> bytes:
    if status in REASONS:
        reason, title, default_detail = REASONS[status]
    else:
        title = PARSER_TITLES.get(status, "bad_request")
        default_detail = (
            "the request could not be answered"
            if status >= 500
            else "the request could not be read"
        )
    detail = detail[:200] or default_detail
    body = json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


class BufferingWorker(ThreadWorker):
    """gunicorn's threaded worker, with every request read whole before a thread takes it."""

    def init_process(self) -> None:
        from models.settings import Settings

        # gunicorn answers what its parser refuses (handle_error, after its logging and
        # access log) through util.write_error, as an HTML page: in this worker's process it
        # writes the refusal as the app would, like every other refusal of the service.
        gunicorn_util.write_error = self.write_refusal

        settings = Settings()
        self.reading: dict[Any, float] = {}
        self.settings = settings
        self.idle_timeout = settings.web_idle_timeout  # a new connection that sends nothing
        self.read_timeout = settings.web_request_read_timeout  # first byte to last of a request
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        if getattr(conn, "complete", False) or self.cfg.is_ssl:
            conn.complete = False
            super().enqueue_req(conn)
            return
        self._read_ahead(conn, idle=True)

    def refusal(self, status: int, detail: str, path: str) -> bytes:
        """The refusal in the format of the protocol `path` speaks; problem JSON when the
        app is not loaded or cannot render it (a refusal is answered whatever happens)."""
        app = getattr(self, "wsgi", None)
        if app is not None and hasattr(app, "test_request_context"):
            try:
                return rendered_refusal(app, status, detail, path)
            except Exception:  # the event loop must answer and go on, whatever the app does
                self.log.exception("rendering a refusal failed; answering problem JSON")
        return problem_response(status, detail=detail)

    def write_refusal(self, sock: Any, status_int: int, _reason: str, mesg: str) -> None:
        """gunicorn.util.write_error's signature, for the request this thread answers."""
        gunicorn_util.write_nonblock(sock, self.refusal(status_int, mesg, ANSWERING_PATH.get()))

    def handle(self, conn: Any) -> Any:
        answering = ANSWERING_PATH.set(getattr(conn, "request_path", "/"))
        try:
            return super().handle(conn)
        finally:
            ANSWERING_PATH.reset(answering)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """A chunked body is decoded here, before the app runs: gunicorn decodes it as the app
        reads it, so a malformed one (a bad chunk size, a chunk longer than it said, a bad
        trailer) raised from the app's first read, a 500. Raised here, gunicorn's error
        handling answers it as the client's error (400, or 431 for a trailer over the limit)
        and closes the connection. The body is in memory already (read whole above)."""
        if isinstance(req.body.reader, ChunkedReader):
            req.body = Body(io.BytesIO(req.body.read()))
        return super().handle_request(req, conn)

    def accept(self, listener: socket.socket) -> None:
        try:
            super().accept(listener)
        except OSError as exc:  # the peer left between poll and accept
            if exc.errno not in (errno.ECONNABORTED, errno.EAGAIN):
                raise

    def _read_ahead(self, conn: Any, *, idle: bool) -> None:
        conn.sock.setblocking(False)
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.pending = bytearray(leftover)
        conn.read_started = None
        self.reading[conn] = time.monotonic() + (self.idle_timeout if idle else self.read_timeout)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))
        if leftover:
            self._progress(conn)

    def _readable(self, conn: Any, _sock: socket.socket) -> None:
        try:
            while True:
                chunk = conn.sock.recv(RECV_SIZE)
                if not chunk:
                    self._drop(conn)
                    return
                conn.pending += chunk
                if len(chunk) < RECV_SIZE:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(conn)
            return
        self._progress(conn)

    def _progress(self, conn: Any) -> None:
        if conn.read_started is None and conn.pending:
            conn.read_started = time.monotonic()
            self.reading[conn] = conn.read_started + self.read_timeout
        end = request_end(
            conn.pending,
            line_limit=self.cfg.limit_request_line or 8190,
            max_body=body_limit(self.settings, request_path(conn.pending)),
        )
        if isinstance(end, Incomplete):
            self._maybe_continue(conn)
            return
        if end < 0:
            self._refuse(conn, -end)
            return
        self._hand_over(conn)

    def _maybe_continue(self, conn: Any) -> None:
        """Send 100 Continue once the head asks for it, so the client sends its body now;
        unless the answer is known already (RFC 9110 section 10.1.1): a body over the route's
        limit was refused before (request_end), and credentials absent or malformed for the
        route are refused here, with its own 401, and the body never read. Only their
        presence and shape: the app verifies them, after the body."""
        head_end = conn.pending.find(b"\r\n\r\n")
        if head_end < 0 or getattr(conn, "continued", False):
            return
        head = bytes(conn.pending[:head_end])
        lowered = head.lower()
        if b"\r\nexpect: 100-continue" in lowered or b"\r\nexpect:100-continue" in lowered:
            conn.continued = True
            refusal = self.credentials_refusal(head)
            if refusal is not None:
                self._answer_and_close(conn, refusal)
                return
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                self._drop(conn)

    def credentials_refusal(self, head: bytes) -> bytes | None:
        """credentials_refusal, or None (continue, as before) when the app cannot say."""
        app = getattr(self, "wsgi", None)
        if app is None or not hasattr(app, "test_request_context"):
            return None
        try:
            return credentials_refusal(app, head, request_path(head))
        except Exception:  # the event loop must go on, whatever the app does
            self.log.exception("checking a head's credentials failed; answering 100 Continue")
            return None

    def _hand_over(self, conn: Any) -> None:
        self._forget(conn)
        conn.sock.setblocking(True)
        conn.init()  # plain HTTP: only makes the parser
        conn.request_path = request_path(conn.pending)
        conn.parser.unreader.unread(bytes(conn.pending))
        conn.pending = bytearray()
        conn.continued = False
        conn.data_ready = True
        conn.complete = True
        self.enqueue_req(conn)

    def _refuse(self, conn: Any, status: int) -> None:
        answer = self.refusal(status, REASONS[status][2], request_path(conn.pending))
        self._answer_and_close(conn, answer)

    def _answer_and_close(self, conn: Any, answer: bytes) -> None:
        """What the client sent meanwhile is read first: closing a socket with unread bytes
        sends a reset, which can make the client drop the answer."""
        with contextlib.suppress(OSError):
            for _ in range(16):
                if not conn.sock.recv(RECV_SIZE):
                    break
        with contextlib.suppress(OSError):
            conn.sock.send(answer)
            conn.sock.shutdown(socket.SHUT_WR)
        self._drop(conn)

    def _forget(self, conn: Any) -> None:
        self.reading.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: Any) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if deadline <= now:
                if conn.pending:
                    self._refuse(conn, 408)
                else:
                    self._drop(conn)
