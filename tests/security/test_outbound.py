"""The outbound address policy: which addresses are refused, and the connection pinned to the
address that was checked (no second DNS lookup to rebind)."""

from __future__ import annotations

import re
import socket

import pytest
from pytest_httpserver import HTTPServer

from connectors.outbound import (
    RefusedDestination,
    UnsafeUrl,
    UrlPolicy,
    _Watchdog,
    check_url,
    parse_name_servers,
    parse_networks,
    pinned_session,
    post_json,
)
from models.settings import Settings, SettingsError, load_settings
from tests.support.held_dns import held_name_server
from tests.support.keys import TEST_SECRET_KEY
from tests.support.trickled_body import TrickledBody
from tests.support.trickled_head import trickled_head

STRICT = UrlPolicy()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "carrier-grade NAT"),  # a cloud metadata address
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::ffff:10.0.0.1]", "private"),
        ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64 of 169.254.169.254
        ("[::a00:1]", "private"),  # IPv4-compatible 10.0.0.1
        ("[2002:7f00:1::1]", "6to4"),
        ("[2002:a9fe:a9fe::1]", "6to4"),
        ("[2002:808:808::1]", "6to4"),
        ("[2001:0:4136:e378::1]", "Teredo"),
        ("192.0.2.1", "not a public address"),
        ("198.18.0.1", "not a public address"),
        ("224.0.0.1", "not a public address"),
        ("255.255.255.255", "not a public address"),
    ],
)
def test_internal_and_tunnelled_addresses_are_refused(host, reason):
    with pytest.raises(UnsafeUrl) as refused:
        check_url(f"https://{host}/hook", STRICT)
    assert reason in refused.value.reason


def test_public_addresses_pass_also_wrapped_in_ipv6():
    for host in ("93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[::ffff:8.8.8.8]"):
        assert check_url(f"https://{host}/hook", STRICT)


def test_allow_list_opens_exactly_the_listed_networks():
    policy = UrlPolicy(allowed_networks=parse_networks("10.20.0.0/16, 100.64.1.1"))
    assert check_url("http://10.20.3.4/h", policy)
    assert check_url("http://100.64.1.1/h", policy)
    for refused in ("http://10.21.0.1/h", "http://127.0.0.1/h", "http://169.254.169.254/"):
        with pytest.raises(UnsafeUrl):
            check_url(refused, policy)
    # allowing private networks still leaves link-local (metadata) refused
    with pytest.raises(UnsafeUrl):
        check_url("http://169.254.169.254/", UrlPolicy(allow_private=True, allow_loopback=True))


def test_the_default_settings_allow_nothing_internal(monkeypatch):
    for name in ("OUTBOUND_ALLOW_LOOPBACK", "OUTBOUND_ALLOW_PRIVATE_ADDRESSES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OUTBOUND_ALLOWED_NETWORKS", raising=False)
    policy = Settings(secret_key=TEST_SECRET_KEY).outbound_policy()
    for url in ("http://127.0.0.1/", "http://10.0.0.1/", "http://100.64.0.1/"):
        with pytest.raises(UnsafeUrl):
            check_url(url, policy)
    operator = Settings(secret_key=TEST_SECRET_KEY).operator_outbound_policy()
    assert check_url("http://10.0.0.1/", operator)
    with pytest.raises(UnsafeUrl):
        check_url("http://169.254.169.254/", operator)


def test_a_bad_allow_list_fails_at_start_up(monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/8, not-a-network")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    with pytest.raises(SettingsError, match="OUTBOUND_ALLOWED_NETWORKS"):
        load_settings()


def test_names_are_asked_of_the_operators_name_servers(monkeypatch):
    """OUTBOUND_DNS_SERVERS: the names admins choose are resolved by these servers (a loopback
    one here), judged as any other answer; a name they do not know does not resolve."""
    names = {"hook.example.test": "127.0.0.1", "metadata.example.test": "169.254.169.254"}
    with held_name_server(names) as server:
        server.answer.set()
        monkeypatch.setenv("OUTBOUND_DNS_SERVERS", server.servers)
        monkeypatch.setenv("OUTBOUND_ALLOW_LOOPBACK", "true")
        monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
        policy = load_settings().outbound_policy()
        assert check_url("https://hook.example.test/in", policy)
        with pytest.raises(UnsafeUrl, match=re.escape("link-local address 169.254.169.254")):
            check_url("https://metadata.example.test/in", policy)
        with pytest.raises(UnsafeUrl, match=re.escape("'nowhere.example.test' does not resolve")):
            check_url("https://nowhere.example.test/in", policy)
        assert "hook.example.test." in server.asked


def test_a_name_server_that_does_not_answer_resolves_nothing():
    """Held past the policy's dns_timeout: the name does not resolve (nothing is waited on
    for longer)."""
    with held_name_server({"hook.example.test": "127.0.0.1"}) as server:
        policy = UrlPolicy(
            allow_loopback=True, dns_servers=parse_name_servers(server.servers), dns_timeout=0.2
        )
        with pytest.raises(UnsafeUrl, match="does not resolve"):
            check_url("https://hook.example.test/in", policy)
        assert server.arrived.is_set()


def test_name_servers_are_addresses_with_optional_ports(monkeypatch):
    assert parse_name_servers(" 192.0.2.53, 192.0.2.54:5353,[2001:db8::53]:53, 2001:db8::54") == (
        ("192.0.2.53", 53),
        ("192.0.2.54", 5353),
        ("2001:db8::53", 53),
        ("2001:db8::54", 53),
    )
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    for bad in ("dns.example.test", "192.0.2.53:0", "192.0.2.53:x"):
        monkeypatch.setenv("OUTBOUND_DNS_SERVERS", bad)
        with pytest.raises(SettingsError, match="OUTBOUND_DNS_SERVERS"):
            load_settings()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """`hook.test` resolves to 127.0.0.1 once, then to 127.0.0.2 (where nothing listens)."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "hook.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_a_post_goes_to_the_checked_address_with_the_original_host(
    httpserver: HTTPServer, rebinding_dns
):
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    policy = UrlPolicy(allowed_networks=parse_networks("127.0.0.1/32"))
    url = f"http://hook.test:{httpserver.port}/hook"
    result = post_json(url, b"{}", {}, timeout=5, policy=policy)
    assert result.ok, result
    assert rebinding_dns == ["hook.test"]  # resolved once, by the check
    request, _ = httpserver.log[-1]
    assert request.headers["Host"] == f"hook.test:{httpserver.port}"


def test_a_hook_trickling_its_answer_is_not_waited_for(httpserver: HTTPServer) -> None:
    """A delivery is its status: the body is never read, so a receiver sending one a byte at
    a time (each within the read timeout) cannot hold a worker past its timeout. The call is
    done while the body is still coming (a caller reading it would wait a minute for it, or,
    bounded by its timeout, fail the delivery)."""
    trickle = TrickledBody()
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_handler(trickle)
    try:
        result = post_json(
            httpserver.url_for("/hook"),
            b"{}",
            {},
            timeout=0.5,
            policy=UrlPolicy(allow_loopback=True),
        )
        assert result.ok, result
        assert trickle.started.is_set() and not trickle.ended.is_set()
    finally:
        trickle.release()


def test_a_hook_trickling_its_headers_past_the_timeout_is_a_failed_delivery() -> None:
    """The status is read, and so the status line and headers: a receiver sending them a byte
    at a time, each within the read timeout, held the worker until it finished (here some
    15 s, then a 200, taken as delivered). The timeout now bounds the whole exchange."""
    with trickled_head(b"ok", seconds=15.0) as hook:
        result = post_json(hook.url, b"{}", {}, timeout=2.0, policy=UrlPolicy(allow_loopback=True))
        assert hook.hung_up.wait(10.0), "the worker did not hang up mid-headers"
    assert not result.ok and result.error == "NotAnsweredInTime", result
    assert not hook.answered.is_set()


def test_a_pinned_session_refuses_before_connecting(httpserver: HTTPServer):
    with pinned_session(STRICT) as http, pytest.raises(RefusedDestination) as refused:
        http.get(httpserver.url_for("/never"), timeout=5)
    assert "loopback" in str(refused.value)
    assert httpserver.log == []


def test_pinned_https_resolves_once(rebinding_dns):
    """HTTPS goes to the pinned IP too (the name is kept for SNI and verification)."""
    import requests

    with (
        pinned_session(UrlPolicy(allow_loopback=True)) as http,
        pytest.raises(requests.exceptions.ConnectionError),
    ):
        # Nothing serves TLS at 127.0.0.1:9; what matters is that no second lookup happens.
        http.get("https://hook.test:9/", timeout=2)
    assert rebinding_dns == ["hook.test"]


@pytest.mark.parametrize(
    "target",
    [
        "https://100.100.100.200/latest/meta-data",
        "https://[2002:a9fe:a9fe::1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "http://127.0.0.1:8080/hook",
    ],
)
@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_hooks_cannot_target_internal_addresses(client_with, session, target, kind):
    from models.enums import Role
    from tests.support import factories

    org = factories.make_org(session)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN)
    auth = {"Authorization": f"Bearer {factories.admin_token(session, org, admin)}"}
    session.commit()
    strict = client_with(outbound_allow_loopback=False)
    answer = strict.post(
        "/api/v1/notification-hooks",
        json={"name": "h", "kind": kind, "target": target},
        headers=auth,
    )
    assert answer.status_code == 400, answer.json
    assert strict.get("/api/v1/notification-hooks", headers=auth).json["items"] == []


def test_a_watchdog_firing_after_its_request_ended_leaves_the_socket_alone() -> None:
    """Timer.cancel() does not stop a timer thread already woken: when it runs once the
    request is done (stop() called), the socket may be back in the pool or serving the next
    request on the session; it must not be shut, nor the request marked late."""
    ours, peer = socket.socketpair()
    with ours, peer:
        watchdog = _Watchdog(3600.0)
        watchdog.watch(ours)
        watchdog.stop()
        watchdog._expire()  # the timer thread, woken just before stop(), runs now
        ours.sendall(b"next request")
        assert peer.recv(64) == b"next request"
        assert watchdog.expired is False
