"""The outbound address policy: every address odock-sync connects to because someone chose it.

Notification hooks and LDAP servers (an organisation admin's choice) and the gateway and key
store (the operator's) are all reached through this module. A destination must resolve only
to addresses the policy allows, and the connection then goes to the address that was checked:
the name is resolved once, the socket is opened to that IP, and the original name is still
sent as the HTTP Host header and used for TLS SNI and certificate verification, so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.

Refused unless allow-listed: loopback, private (RFC 1918, fc00::/7), carrier-grade NAT
(100.64.0.0/10), link-local (169.254.0.0/16, fe80::/10, where cloud metadata lives), and every
other address that is not globally routable. IPv4 inside IPv6 (mapped ::ffff:0:0/96,
compatible ::/96, NAT64 64:ff9b::/96) is judged by its IPv4 address; 6to4 (2002::/16) and
Teredo (2001::/32) are refused whatever they embed unless their own range is allow-listed.

Names are resolved by the system's resolver, or by the name servers the policy names (the
operator's OUTBOUND_DNS_SERVERS), asked directly with a bound on the whole resolution. A check
made long before the connection (when an admin saves a destination) is advisory: it can be
made ahead of a database transaction (`ResolvedNames`), and the connection checks again.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dns.exception
import dns.nameserver
import dns.resolver
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
PRIVATE_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
TEREDO = ipaddress.ip_network("2001::/32")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
NAMED_RANGES: tuple[tuple[Network, str], ...] = (
    (ipaddress.ip_network("127.0.0.0/8"), "loopback"),
    (ipaddress.ip_network("::1/128"), "loopback"),
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    *((network, "private") for network in PRIVATE_NETWORKS),
    (SIX_TO_FOUR, "6to4"),
    (TEREDO, "Teredo"),
)


class UnsafeUrl(Exception):
    """The destination may not be called; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NameServer = tuple[str, int]  # an address and its port


@dataclass(frozen=True)
class UrlPolicy:
    """Which non-public addresses are allowed (everything not globally routable is refused),
    and who resolves names: the system's resolver, or these name servers, for at most
    `dns_timeout` seconds a name."""

    allow_private: bool = False
    allow_loopback: bool = False
    allowed_networks: tuple[Network, ...] = field(default=())
    dns_servers: tuple[NameServer, ...] = field(default=())
    dns_timeout: float = 5.0

    def allows(self, address: Address) -> bool:
        return any(address in network for network in self._allowed())

    def _allowed(self) -> Iterable[Network]:
        yield from self.allowed_networks
        if self.allow_loopback:
            yield from LOOPBACK_NETWORKS
        if self.allow_private:
            yield from PRIVATE_NETWORKS


def parse_name_servers(text: str) -> tuple[NameServer, ...]:
    """Comma-separated name servers, each an IP address with an optional port (53):
    `192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53`; ValueError if bad."""
    servers = []
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        host, port = part, "53"
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif part.count(":") == 1:
            host, _, port = part.partition(":")
        if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{part!r}: the port must be a number from 1 to 65535")
        servers.append((str(ipaddress.ip_address(host)), int(port)))
    return tuple(servers)


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDR networks (a bare address is a /32 or /128); ValueError if bad."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


# A Retry-After is read as at most this many seconds (about 31 years).
RETRY_AFTER_MAX = 1e9


@dataclass(frozen=True)
class PostResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None  # a refusal's Retry-After, in seconds, when it gave one


def check_url(url: str, policy: UrlPolicy | ResolvedNames, *, resolve: bool = True) -> str:
    """The URL if it may be called; UnsafeUrl otherwise."""
    host, port = _http_target(url)
    if resolve:
        resolve_checked(host, port, policy)
    return url


def http_target(url: str) -> tuple[str, int] | None:
    """The host and port an http(s) URL names; None when it is not one (check_url says why)."""
    try:
        return _http_target(url)
    except UnsafeUrl:
        return None


def _http_target(url: str) -> tuple[str, int]:
    if len(url) > 2000:
        raise UnsafeUrl("the URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("the URL is malformed") from None
    if parts.scheme not in {"http", "https"}:
        raise UnsafeUrl("the URL scheme must be http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("the URL must not contain credentials")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_checked(host: str, port: int, policy: UrlPolicy | ResolvedNames) -> list[Address]:
    """Every address `host` resolves to, if the policy allows them all; UnsafeUrl otherwise.

    All must pass: a name that answers one public and one private address is refused, since
    the connection could go to either.
    """
    if isinstance(policy, ResolvedNames):
        return policy.resolve_checked(host, port)
    addresses = _addresses(host, port, policy)
    if not addresses:
        raise UnsafeUrl(f"the host {host!r} does not resolve")
    for address in addresses:
        reason = refusal(address, policy)
        if reason:
            raise UnsafeUrl(reason)
    return addresses


def refusal(address: Address, policy: UrlPolicy) -> str | None:
    """Why `address` may not be connected to, or None if it may."""
    if policy.allows(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded, policy)
    for network, name in NAMED_RANGES:
        if address in network:
            return f"{name} address {address} is not allowed"
    if not address.is_global or address.is_multicast:
        return f"the address {address} is not allowed (not a public address)"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class ResolvedNames:
    """Names resolved and judged by `policy` ahead of their check: before a database
    transaction begins, because a name server may take as long as it likes to answer and, on
    SQLite, every transaction holds the database's write lock. A name not resolved ahead is
    resolved when checked. Advisory, as every check before the connection is: the connection
    resolves and checks again (PinnedAdapter, connect_tcp)."""

    policy: UrlPolicy
    # Each (host, port): the addresses it resolved to, or why it is refused.
    outcomes: Mapping[tuple[str, int], tuple[Address, ...] | str] = field(default_factory=dict)

    @classmethod
    def ahead(cls, policy: UrlPolicy, targets: Iterable[tuple[str, int]]) -> ResolvedNames:
        outcomes: dict[tuple[str, int], tuple[Address, ...] | str] = {}
        for host, port in dict.fromkeys(targets):
            try:
                outcomes[host, port] = tuple(resolve_checked(host, port, policy))
            except UnsafeUrl as exc:
                outcomes[host, port] = exc.reason
        return cls(policy, outcomes)

    def resolve_checked(self, host: str, port: int) -> list[Address]:
        outcome = self.outcomes.get((host, port))
        if outcome is None:
            return resolve_checked(host, port, self.policy)
        if isinstance(outcome, str):
            raise UnsafeUrl(outcome)
        return list(outcome)


def _addresses(host: str, port: int, policy: UrlPolicy) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if policy.dns_servers:
        return _asked(host, policy)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"the host {host!r} does not resolve") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return list(dict.fromkeys(found))


def _asked(host: str, policy: UrlPolicy) -> list[Address]:
    """The A and AAAA records of `host` from the policy's name servers (no search domains,
    no hosts file), within its dns_timeout as a whole."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [
        dns.nameserver.Do53Nameserver(address, port) for address, port in policy.dns_servers
    ]
    deadline = time.monotonic() + policy.dns_timeout
    found: list[Address] = []
    for record_type in ("A", "AAAA"):
        try:
            answer = resolver.resolve(
                host, record_type, search=False, lifetime=max(deadline - time.monotonic(), 0.001)
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.DNSException, UnicodeError, ValueError):
            raise UnsafeUrl(f"the host {host!r} does not resolve") from None
        found += [ipaddress.ip_address(record.address) for record in answer]
    return list(dict.fromkeys(found))


def connect_tcp(host: str, port: int, policy: UrlPolicy, *, timeout: float) -> socket.socket:
    """A TCP connection to the first checked address of `host` that accepts (for LDAP)."""
    last: OSError | None = None
    for address in resolve_checked(host, port, policy):
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((str(address), port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.settimeout(None)
        return sock
    assert last is not None
    raise last


class NotAnsweredInTime(requests.exceptions.ReadTimeout):
    """The server's status line and headers had not all come by the call's deadline."""


WATCHDOG_THREAD = "outbound-watchdog"
# Stopped watchdogs stay in the heap until their deadline comes up; past this many, and when
# they outnumber the live ones, they are swept out at once (a burst of quick calls with long
# timeouts would otherwise keep them all for the length of the timeout).
STOPPED_KEPT = 1000


class _Watchdog:
    """Shuts down, at the deadline, every socket the request it watches uses: a read blocked
    on one then returns at once, however the server paces what it sends. The deadline is
    kept by the process's one watchdog thread (`_Deadlines`), not a thread of its own."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.seconds = max(seconds, 0.0)
        self.expired = False
        self.stopped = False

    def start(self) -> None:
        _DEADLINES.add(self, time.monotonic() + self.seconds)

    def stop(self) -> None:
        # Under the lock: the watchdog thread may be expiring it right now; once stopped it
        # never shuts a socket the request is done with (a kept-alive one is back in the pool,
        # or reading the body, or another request's).
        with self._lock:
            self.stopped = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


class _Deadlines:
    """One daemon thread per process that expires the watchdogs at their deadlines, the
    earliest first (a heap): a burst of outbound calls costs heap entries, not a thread each."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()  # equal deadlines by arrival: watchdogs do not compare
        self._pid = 0

    def add(self, watchdog: _Watchdog, deadline: float) -> None:
        with self._wake:
            if self._pid != os.getpid():
                # First use in this process (a forked worker inherits the heap, not the thread).
                self._heap, self._pid = [], os.getpid()
                threading.Thread(target=self._run, name=WATCHDOG_THREAD, daemon=True).start()
            if len(self._heap) > STOPPED_KEPT:
                live = [entry for entry in self._heap if not entry[2].stopped]
                if len(live) * 2 < len(self._heap):
                    self._heap = live
                    heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline, next(self._order), watchdog))
            if self._heap[0][2] is watchdog:
                self._wake.notify()  # earlier than the deadline the thread sleeps towards

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
            if due is not None:
                due._expire()  # outside the heap's lock: it takes the watchdog's own

    def _next_due(self) -> _Watchdog | None:
        """The first watchdog whose deadline has passed (taken off the heap), or None after
        waiting for the next deadline or a new, earlier one."""
        while self._heap and self._heap[0][2].stopped:
            heapq.heappop(self._heap)
        if not self._heap:
            self._wake.wait()
            return None
        left = self._heap[0][0] - time.monotonic()
        if left > 0:
            self._wake.wait(left)
            return None
        return heapq.heappop(self._heap)[2]


_DEADLINES = _Deadlines()


@contextmanager
def socket_deadline(seconds: float) -> Iterator[_Watchdog]:
    """A bound on a whole exchange over sockets the caller hands to it (`watch`), for a
    protocol whose client library bounds only each read (smtplib): at the deadline each is
    shut down, so a read blocked on one returns at once however the other end paces its bytes;
    `expired` then says why."""
    watchdog = _Watchdog(seconds)
    watchdog.start()
    try:
        yield watchdog
    finally:
        watchdog.stop()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS one (its own would drop its TLS state under
    # the reading thread); a socket since wrapped in TLS (detached) or closed is left alone.
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG: ContextVar[_Watchdog | None] = ContextVar("outbound_watchdog", default=None)


def _watch(sock: socket.socket | None) -> None:
    watchdog = _WATCHDOG.get()
    if watchdog is not None:
        watchdog.watch(sock)


class _WatchedMixin:
    """A connection whose sockets (the TCP one, then the TLS one; or a kept-alive one) the
    current request's watchdog shuts down at its deadline."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _total_seconds(timeout: Any) -> float | None:
    """The whole exchange's time from requests' `timeout`: a number, or (connect, read)."""
    if isinstance(timeout, tuple):
        parts = [part for part in timeout if part is not None]
        return float(sum(parts)) if len(parts) == len(timeout) else None
    if isinstance(timeout, int | float):
        return float(timeout)
    return None


class PinnedAdapter(HTTPAdapter):
    """Sends each request to the address the policy checked, keeping the name for TLS.

    The call's `timeout` bounds the exchange up to the answer's headers as a whole (connect,
    send, status line and headers), not only each read: a server or proxy trickling its status
    line or headers, a byte within every read timeout, would otherwise hold the caller as long
    as it liked (past the lease on a cut-off, so that the reaper calls again beside it). A
    watchdog shuts the connection's socket down at the deadline, and the call fails with
    NotAnsweredInTime (a requests.Timeout). The body is the caller's to bound: read_bounded,
    by the same deadline."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        seconds = _total_seconds(kwargs.get("timeout"))
        if seconds is None:
            return self._send_pinned(request, **kwargs)
        watchdog = _Watchdog(seconds)
        token = _WATCHDOG.set(watchdog)
        watchdog.start()
        try:
            response = self._send_pinned(request, **kwargs)
        except requests.RequestException as exc:
            if watchdog.expired:
                raise NotAnsweredInTime(
                    f"not answered within {seconds:g} s", request=request
                ) from exc
            raise
        finally:
            watchdog.stop()
            _WATCHDOG.reset(token)
        if watchdog.expired:  # its headers came just as the deadline passed: too late
            response.close()
            raise NotAnsweredInTime(f"not answered within {seconds:g} s", request=request)
        return response

    def _send_pinned(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        try:
            host, port = _http_target(url)
            address = resolve_checked(host, port, self.policy)[0]
        except UnsafeUrl as exc:
            raise RefusedDestination(exc.reason, request=request) from None
        parts = urlsplit(url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(parts._replace(netloc=f"{literal}:{port}"))
        request.pinned_host = host  # type: ignore[attr-defined]
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(kwargs)
        host = getattr(request, "pinned_host", None)
        if host_params["scheme"] == "https" and host and not _is_literal(host):
            pool_kwargs.update(server_hostname=host, assert_hostname=host)
        return host_params, pool_kwargs


class RefusedDestination(requests.ConnectionError):
    """The policy refused the destination (raised from inside a pinned session)."""


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


SessionT = TypeVar("SessionT", bound=requests.Session)


def pinned_session(policy: UrlPolicy) -> requests.Session:
    """A requests session whose every connection passes the policy and goes to the checked IP."""
    return pin(requests.Session(), policy)


def pin(session: SessionT, policy: UrlPolicy) -> SessionT:
    """Make every connection of `session` (an OAuth client's too) pass the policy and go to
    the checked IP.

    It reads no proxy, netrc or CA settings from the environment (a proxy would connect
    elsewhere, a netrc would add credentials) and follows no redirects: a redirect is refused
    (TooManyRedirects) with its body unread.
    """
    session.trust_env = False
    session.max_redirects = 0
    session.get_redirect_target = _refuse_redirect  # type: ignore[method-assign,assignment]
    adapter = PinnedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _refuse_redirect(response: requests.Response) -> None:
    """requests' redirect handling, even when told not to follow, reads a redirect's whole body
    first, after the call's deadline stopped applying: a 3xx with a Location and a body trickled
    or without end held the caller as long as the server liked. It is refused before that."""
    if response.is_redirect:
        response.close()
        raise requests.TooManyRedirects(
            f"answered {response.status_code}, a redirect: not followed", response=response
        )


def post_json(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, policy: UrlPolicy
) -> PostResult:
    """POST without following redirects (a redirect could lead to a private address). Only the
    status (and a refusal's Retry-After) is read: the answer's body, which nothing uses, is left
    unread (stream=True), so a receiver sending it slowly or without end holds no worker past
    `timeout`."""
    started = time.monotonic()
    try:
        with (
            pinned_session(policy) as http,
            http.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            status = response.status_code
            ok = 200 <= status < 300
            wait = None if ok else retry_after_seconds(response)
    except RefusedDestination as exc:
        return PostResult(False, None, f"refused: {exc}", _ms(started))
    except requests.RequestException as exc:
        return PostResult(False, None, f"{type(exc).__name__}", _ms(started))
    asked = "" if wait is None else f" (Retry-After {wait:.0f} s)"
    error = None if ok else f"HTTP {status}{asked}"
    return PostResult(ok, status, error, _ms(started), retry_after=wait)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class BodyRefused(Exception):
    """An answer's body not taken: larger than allowed, or not read whole by its deadline."""


class BodyTooLarge(BodyRefused):
    pass


class BodyTooSlow(BodyRefused):
    pass


def read_bounded(response: requests.Response, *, max_bytes: int, deadline: float) -> bytes:
    """The body of a response requested with stream=True, read no further than `max_bytes`
    (BodyTooLarge) and no later than `deadline`, a time.monotonic() (BodyTooSlow). Each read
    returns what one receive brings and waits at most the time left: a server trickling a
    byte at a time, each within the read timeout, is cut off at the deadline."""
    chunks: list[bytes] = []
    size = 0
    sock = getattr(response.raw.connection, "sock", None)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BodyTooSlow("not read whole in time")
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = response.raw.read1(READ_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise BodyTooSlow("not read whole in time") from None
        except urllib3.exceptions.HTTPError as exc:
            # As requests' own reads turn them: a body cut short (the connection closed before
            # its length) or undecodable is a RequestException to every caller, never urllib3's.
            raise _as_request_error(exc) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"larger than {max_bytes} bytes")
        chunks.append(chunk)


def _as_request_error(exc: urllib3.exceptions.HTTPError) -> requests.RequestException:
    """The requests exception requests' iter_content raises for this urllib3 error."""
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return requests.exceptions.ContentDecodingError(exc)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return requests.exceptions.ChunkedEncodingError(exc)
    return requests.exceptions.ConnectionError(exc)


READ_BYTES = 64 * 1024


def retry_after_seconds(response: requests.Response) -> float | None:
    """The answer's Retry-After in seconds (given as seconds or as an HTTP date, RFC 9110
    section 10.2.3); None when absent or unreadable. The caller caps it; this only keeps it
    finite (at most RETRY_AFTER_MAX: a string of 400 nines is a float's infinity, which no
    JSON column stores)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), RETRY_AFTER_MAX)
