"""A small python-ldap client: bind with failover, TLS verified by default, paged search.

Every python-ldap error leaves this module as one of the few classes in `errors`, and a paged
search either yields every page and ends with the server's cookie exhausted, or raises.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import ldap
import ldap.dn
import ldapurl
from ldap.controls import SimplePagedResultsControl
from ldap.ldapobject import LDAPObject

from connectors.ldap.errors import (
    DirectoryAuthError,
    DirectoryConfigError,
    DirectoryError,
    DirectoryIncomplete,
    DirectoryTlsError,
    DirectoryUnavailable,
)
from connectors.ldap.ranges import (
    Attributes,
    RangeError,
    ValueRange,
    first_ranges,
    following,
    merged,
)
from connectors.outbound import UnsafeUrl, UrlPolicy, connect_tcp, refusal, resolve_checked

Entry = tuple[str, Attributes]

PAGED_OID = SimplePagedResultsControl.controlType
# Follow-up searches for one ranged attribute: 1,000 reads 1.5 million values at AD's
# smallest MaxValRange; past it a server that keeps answering is not advancing usefully.
MAX_RANGE_REQUESTS = 1000
RESPONSE_CONTROLS = {PAGED_OID: SimplePagedResultsControl}


@dataclass(frozen=True)
class ServerConfig:
    """Where and how to connect; the password never appears in a repr or a log line."""

    urls: tuple[str, ...]
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    start_tls: bool = False
    ca_file: str = ""
    verify_tls: bool = True
    connect_timeout: float = 5.0
    search_timeout: float = 60.0
    policy: UrlPolicy = field(default_factory=UrlPolicy)


@dataclass
class SearchStats:
    """What one paged search read; `complete` is set only after the last page's cookie."""

    pages: int = 0
    entries: int = 0
    complete: bool = False


_AUTH = (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH, ldap.INSUFFICIENT_ACCESS)
_UNAVAILABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.UNAVAILABLE, ldap.BUSY, ldap.CONNECT_ERROR)
_INCOMPLETE = (
    ldap.SIZELIMIT_EXCEEDED,
    ldap.TIMELIMIT_EXCEEDED,
    ldap.ADMINLIMIT_EXCEEDED,
    ldap.PARTIAL_RESULTS,
    ldap.REFERRAL,
)
# How servers refuse a page cookie they no longer hold: slapd unwillingToPerform or
# protocolError, Active Directory unwillingToPerform or operationsError.
_COOKIE_REFUSED = (ldap.UNWILLING_TO_PERFORM, ldap.PROTOCOL_ERROR, ldap.OPERATIONS_ERROR)
_CONFIG = (
    ldap.NO_SUCH_OBJECT,
    ldap.FILTER_ERROR,
    ldap.INVALID_DN_SYNTAX,
    ldap.UNAVAILABLE_CRITICAL_EXTENSION,
    ldap.PROTOCOL_ERROR,
    ldap.UNWILLING_TO_PERFORM,
)


# Active Directory's application and configuration partitions, whose continuation references
# a search from a domain's root always returns (MS-ADTS 3.1.1.1.12, 6.1.1.2): they hold DNS
# records and the forest's configuration, never the domain's people.
_PARTITIONS = {("dc", "domaindnszones"), ("dc", "forestdnszones"), ("cn", "configuration")}


def _is_partition(url: str) -> bool:
    """Whether a reference points at one of those partitions (its DN: the partition's RDN,
    then only domain components)."""
    try:
        rdns = ldap.dn.str2dn(ldapurl.LDAPUrl(url).dn or "")
    except (ValueError, ldap.DECODING_ERROR):
        return False
    if len(rdns) < 2 or any(len(rdn) != 1 for rdn in rdns):
        return False
    first = (rdns[0][0][0].lower(), rdns[0][0][1].lower())
    return first in _PARTITIONS and all(rdn[0][0].lower() == "dc" for rdn in rdns[1:])


def _text(url: bytes | str) -> str:
    """A reference's URL as text (python-ldap gives them as bytes or str by version)."""
    return url.decode("utf-8", errors="replace") if isinstance(url, bytes) else str(url)


def describe(exc: ldap.LDAPError) -> str:
    """The server's description and diagnostic text, without anything we sent."""
    info: dict[str, Any] = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    desc = str(info.get("desc") or type(exc).__name__)
    extra = str(info.get("info") or "")
    if extra and extra != "(unknown error code)":
        return f"{desc}: {extra}"
    return desc


def map_error(exc: ldap.LDAPError, *, doing: str) -> DirectoryError:
    message = f"{doing}: {describe(exc)}"
    if isinstance(exc, _AUTH):
        return DirectoryAuthError(message)
    if isinstance(exc, ldap.TIMEOUT):
        return DirectoryUnavailable(f"{doing}: the server did not answer in time")
    if isinstance(exc, _UNAVAILABLE):
        return DirectoryUnavailable(message)
    if isinstance(exc, _INCOMPLETE):
        return DirectoryIncomplete(message)
    if isinstance(exc, _CONFIG):
        return DirectoryConfigError(message)
    return DirectoryError(message)


def unreachable(url: str) -> DirectoryUnavailable:
    """One message for a closed port, a silent one, a non-LDAP service and a failed TLS
    handshake: the answer must not tell an admin which ports of a host are open."""
    return DirectoryUnavailable(
        f"could not connect to {url}: no LDAP server answered "
        "(refused, timed out, not LDAP, or the TLS certificate was not trusted)"
    )


class DirectoryClient:
    """One bound connection to the first server of the list that answers."""

    def __init__(self, config: ServerConfig) -> None:
        if not config.urls:
            raise DirectoryConfigError("no server URL is configured")
        self.config = config
        self.url = ""
        self._conn: LDAPObject | None = None

    def __enter__(self) -> DirectoryClient:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def conn(self) -> LDAPObject:
        if self._conn is None:
            raise DirectoryError("the directory connection is not open")
        return self._conn

    def open(self) -> None:
        """Bind to the first reachable server; a refused password stops at once."""
        last: DirectoryError | None = None
        for url in self.config.urls:
            try:
                self._conn = self._bind(url)
                self.url = url
                return
            except (DirectoryUnavailable, DirectoryTlsError) as exc:
                last = exc
        assert last is not None
        raise last

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._conn.unbind_s()
            self._conn = None

    def _bind(self, url: str) -> LDAPObject:
        """Connect to an address the outbound policy allows, then (only then) send the bind.

        Plain ldap:// is pinned: the name is resolved and checked once and libldap is handed
        the connected socket. With TLS (ldaps://, StartTLS) libldap must open the connection
        itself to verify the certificate against the name, so the address it reached is
        checked before the password leaves: a DNS answer that changed in between gets at
        most a TLS handshake and an anonymous root DSE read, never the credentials.
        """
        parsed = urlparse(url)
        scheme = parsed.scheme
        if scheme not in {"ldap", "ldaps"} or not parsed.hostname:
            raise DirectoryConfigError(f"{url!r} is not an ldap:// or ldaps:// URL")
        pinned = scheme == "ldap" and not self.config.start_tls
        try:
            port = parsed.port or (636 if scheme == "ldaps" else 389)
            if pinned:
                sock = connect_tcp(
                    parsed.hostname, port, self.config.policy, timeout=self.config.connect_timeout
                )
                conn = ldap.initialize(url, fileno=sock.detach())
            else:
                resolve_checked(parsed.hostname, port, self.config.policy)
                if scheme == "ldaps":
                    self._handshake_answered(parsed.hostname, port)
                conn = ldap.initialize(url)
        except UnsafeUrl as exc:
            raise DirectoryConfigError(f"{url}: {exc.reason}") from None
        except (OSError, ValueError, ldap.LDAPError):
            raise unreachable(url) from None
        self._set_options(conn)
        try:
            if not pinned:
                self._open_tls(conn, url, scheme)
                self._check_peer(conn, url)
            conn.simple_bind_s(self.config.bind_dn, self.config.bind_password)
        except (*_AUTH, *_CONFIG) as exc:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
            raise map_error(exc, doing=f"binding to {url} as {self.config.bind_dn!r}") from None
        except (ldap.LDAPError, OSError):
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
            raise unreachable(url) from None
        except DirectoryError:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
            raise
        return conn

    def _handshake_answered(self, host: str, port: int) -> None:
        """libldap's ldaps:// handshake waits without a timeout: a server that accepts the
        connection and never answers (frozen, a black hole) would hold the sync for ever.
        So a handshake is made first, bounded by the connect timeout; OSError when it is not
        answered. Whatever it answers is left to libldap, which verifies the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # nothing is sent over it
        timeout = self.config.connect_timeout
        with connect_tcp(host, port, self.config.policy, timeout=timeout) as sock:
            sock.settimeout(timeout)
            with contextlib.suppress(ssl.SSLError), context.wrap_socket(sock):
                pass

    def _open_tls(self, conn: LDAPObject, url: str, scheme: str) -> None:
        if scheme == "ldap":
            try:
                conn.start_tls_s()
            except ldap.LDAPError as exc:
                raise DirectoryTlsError(f"StartTLS with {url} failed: {describe(exc)}") from None
            return
        try:  # opens the connection and the TLS session; the answer itself does not matter
            conn.search_ext_s(
                "", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"], timeout=self.config.search_timeout
            )
        except (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR):
            raise
        except ldap.LDAPError:
            pass

    def _check_peer(self, conn: LDAPObject, url: str) -> None:
        with socket.socket(fileno=os.dup(conn.get_option(ldap.OPT_DESC))) as peer:
            host = str(peer.getpeername()[0]).split("%")[0]
        reason = refusal(ipaddress.ip_address(host), self.config.policy)
        if reason:
            raise DirectoryConfigError(f"{url}: {reason}")

    def _set_options(self, conn: LDAPObject) -> None:
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.config.connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.config.search_timeout)
        # python-ldap's synchronous calls (the bind) wait on this attribute, not on the option.
        conn.timeout = self.config.search_timeout
        require = ldap.OPT_X_TLS_DEMAND if self.config.verify_tls else ldap.OPT_X_TLS_NEVER
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, require)
        if self.config.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.config.ca_file)
        # A fresh TLS context makes the options above apply to this connection only.
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)

    def paged_search(
        self,
        base: str,
        filterstr: str,
        attrs: list[str],
        *,
        page_size: int,
        stats: SearchStats | None = None,
        references: list[str] | None = None,
    ) -> Iterator[list[Entry]]:
        """Yield the matching entries page by page (RFC 2696); raise unless all were read.

        The request for the next page goes out before the current page is handed over, so
        the server prepares it while the caller works; at most two pages are in memory.
        A reference to another naming context (an AD child domain) fails the read, unless
        the caller gives `references`: then its URLs are added there, the search goes on,
        and the caller must treat the read as incomplete.
        """
        stats = stats if stats is not None else SearchStats()
        control = SimplePagedResultsControl(criticality=True, size=page_size, cookie=b"")
        msgid: int | None = self._send(base, filterstr, attrs, control)
        try:
            while msgid is not None:
                entries, cookie = self._receive(
                    msgid,
                    base,
                    filterstr,
                    pages_read=stats.pages,
                    page_size=page_size,
                    references=references,
                )
                stats.pages += 1
                stats.entries += len(entries)
                msgid = None
                if cookie:
                    control.cookie = cookie
                    msgid = self._send(base, filterstr, attrs, control)
                else:
                    stats.complete = True
                yield entries
        finally:
            if msgid is not None:  # the caller stopped early: drop the request in flight
                with contextlib.suppress(ldap.LDAPError):
                    self.conn.abandon(msgid)

    def _send(
        self, base: str, filterstr: str, attrs: list[str], control: SimplePagedResultsControl
    ) -> int:
        try:
            return int(
                self.conn.search_ext(
                    base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[control]
                )
            )
        except ldap.LDAPError as exc:
            raise map_error(exc, doing=f"searching {base!r} with {filterstr!r}") from None

    def _receive(
        self,
        msgid: int,
        base: str,
        filterstr: str,
        *,
        pages_read: int = 0,
        page_size: int = 0,
        references: list[str] | None = None,
    ) -> tuple[list[Entry], bytes]:
        doing = f"searching {base!r} with {filterstr!r}"
        try:
            _, data, _, controls = self.conn.result3(
                msgid,
                all=1,
                timeout=self.config.search_timeout,
                resp_ctrl_classes=RESPONSE_CONTROLS,
            )
        except ldap.ADMINLIMIT_EXCEEDED as exc:
            if pages_read or "page size" not in describe(exc).lower():
                raise map_error(exc, doing=doing) from None
            # slapd's size.pr: the server caps a page below ours and refuses the search.
            raise DirectoryConfigError(
                f"{doing}: {describe(exc)}; the server refuses pages of {page_size} entries: "
                "lower the connector's page_size"
            ) from None
        except _COOKIE_REFUSED as exc:
            if not pages_read:
                raise map_error(exc, doing=doing) from None
            # The search's settings were good for the earlier pages: the server dropped its
            # state for the cookie (restarted, another server behind a balancer, expired).
            raise DirectoryIncomplete(
                f"{doing}: the server refused the paged search's cookie after {pages_read} "
                f"page{'s' if pages_read > 1 else ''} ({describe(exc)}); the read is incomplete"
            ) from None
        except ldap.LDAPError as exc:
            raise map_error(exc, doing=doing) from None
        entries: list[Entry] = data or []
        if any(dn is None for dn, _ in entries):
            entries = self._without_references(entries, doing, references)
        paged = [c for c in controls or [] if c.controlType == PAGED_OID]
        if not paged:
            raise DirectoryIncomplete(f"{doing}: the server did not return a paged-results cookie")
        return entries, bytes(paged[0].cookie or b"")

    @staticmethod
    def _without_references(
        entries: list[Entry], doing: str, references: list[str] | None
    ) -> list[Entry]:
        """The entries of a page that holds references: those to Active Directory's DNS
        and configuration partitions are dropped; any other is noted in `references`, or
        fails the read when the caller keeps no such list."""
        kept: list[Entry] = []
        for dn, attributes in entries:
            if dn is not None:
                kept.append((dn, attributes))
                continue
            urls = [_text(url) for url in attributes or [b""]]
            if all(_is_partition(url) for url in urls):
                continue
            if references is None:
                raise DirectoryIncomplete(
                    f"{doing}: the server returned a referral to {attributes}; "
                    "point the base DN at the server that holds the entries"
                )
            references.extend(url for url in urls if url not in references)
        return kept

    def refuse_alias(self, base: str, *, what: str = "base DN") -> None:
        """DirectoryConfigError when the base is an alias entry (RFC 4512 section 2.6). The
        searches do not dereference aliases, so under an alias they find nobody, and an
        empty read would take the directory for emptied. Anything else the server answers
        (no such entry, a referral, an error) is left to the search, which reports it."""
        try:
            found = self.conn.search_ext_s(
                base,
                ldap.SCOPE_BASE,
                "(objectClass=*)",
                ["objectClass", "aliasedObjectName"],
                timeout=self.config.search_timeout,
            )
        except ldap.LDAPError:
            return
        for found_dn, attrs in found or []:
            if found_dn is None:
                continue
            classes = {
                value.lower()
                for key, values in attrs.items()
                if key.lower() == "objectclass"
                for value in values
            }
            if b"alias" not in classes:
                continue
            target = next(
                (
                    values[0].decode("utf-8", errors="replace")
                    for key, values in attrs.items()
                    if key.lower() == "aliasedobjectname" and values
                ),
                "",
            )
            raise DirectoryConfigError(
                f"the {what} {base} is an alias"
                + (f" of {target}" if target else "")
                + "; aliases are not followed: set the "
                + what
                + " to the entry it names"
            )

    def count(
        self, base: str, filterstr: str, *, page_size: int, references: list[str] | None = None
    ) -> int:
        """How many entries match, reading no attributes (`references`: as paged_search)."""
        total = 0
        for page in self.paged_search(
            base, filterstr, ["1.1"], page_size=page_size, references=references
        ):
            total += len(page)
        return total

    def complete_ranges(self, dn: str, attrs: Attributes, names: Sequence[str]) -> Attributes:
        """The entry with each of these attributes that came in ranges (Active Directory's
        `member;range=0-1499`) read to its last value, under its plain name."""
        doing = f"reading the ranged values of {dn}"
        try:
            first = first_ranges(attrs, names)
            if not first:
                return attrs
            full = {start.attribute: self._rest_of(dn, start, attrs[start.key]) for start in first}
            return merged(attrs, full)
        except RangeError as exc:
            raise DirectoryIncomplete(f"{doing}: {exc}") from None

    def _rest_of(self, dn: str, start: ValueRange, values: list[bytes]) -> list[bytes]:
        collected, current = list(values), start
        for _ in range(MAX_RANGE_REQUESTS):
            if current.high is None:
                return collected
            answer = self._read_entry(dn, [current.next_request()])
            current = following(answer, current)
            collected.extend(answer[current.key])
        raise RangeError(f"{start.attribute} did not end after {MAX_RANGE_REQUESTS} requests")

    def _read_entry(self, dn: str, attrs: list[str]) -> Attributes:
        """One entry's attributes (a base-scope search)."""
        doing = f"reading {', '.join(attrs)} of {dn}"
        try:
            found = self.conn.search_ext_s(
                dn, ldap.SCOPE_BASE, "(objectClass=*)", attrs, timeout=self.config.search_timeout
            )
        except ldap.LDAPError as exc:
            raise map_error(exc, doing=doing) from None
        entries = [attributes for found_dn, attributes in found or [] if found_dn is not None]
        if len(entries) != 1:
            raise DirectoryIncomplete(f"{doing}: the server returned {len(entries)} entries")
        return dict(entries[0])
