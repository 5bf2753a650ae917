"""Outbound HTTP to addresses an organisation chose: validated, then posted with a timeout.

A hook URL must be http(s), carry no credentials, and resolve only to public addresses unless
the settings allow private ones (or loopback, for tests and single-machine installs). The
check runs when the hook is saved and again before every send (DNS can change in between).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests


class UnsafeUrl(Exception):
    """The URL may not be called; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    allow_loopback: bool = False


@dataclass(frozen=True)
class PostResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def check_url(url: str, policy: UrlPolicy, *, resolve: bool = True) -> str:
    """The URL if it may be called; UnsafeUrl otherwise."""
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
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    if resolve:
        for address in _addresses(host, port or (443 if parts.scheme == "https" else 80)):
            _check_address(address, policy)
    return url


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"the host {host!r} does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: UrlPolicy
) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        if not policy.allow_loopback:
            raise UnsafeUrl("loopback addresses are not allowed")
        return
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        raise UnsafeUrl(f"the address {address} is not allowed")
    if (address.is_private or address.is_link_local) and not policy.allow_private:
        raise UnsafeUrl(f"private address {address} is not allowed")


def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> PostResult:
    """POST without following redirects (a redirect could lead to a private address)."""
    started = time.monotonic()
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return PostResult(False, None, f"{type(exc).__name__}", _ms(started))
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code}"
    return PostResult(ok, response.status_code, error, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
