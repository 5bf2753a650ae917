"""Connectors obey the outbound address policy, keep CA files in the operator's directory,
answer every unreachable port alike, and test the connection with short timeouts."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from models.entities import DirectoryConnector
from tests.ldap.conftest import admin_auth, connector_fields
from tests.support.net import refused_port
from tests.support.slapd import ROOT_PASSWORD

STRICT = {"outbound_allow_loopback": False}


class Listener:
    """A loopback TCP listener that records every byte it is sent (and never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(4096):
                    self.received += chunk
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.mark.parametrize(
    "url",
    [
        "ldap://127.0.0.1:389",
        "ldap://169.254.169.254",
        "ldap://100.100.100.200",
        "ldap://10.0.0.5",
        "ldaps://[::1]:636",
        "ldap://[2002:7f00:1::]",
        "ldap://[64:ff9b::a9fe:a9fe]",
        "ldap://[fe80::1]",
    ],
)
def test_a_connector_cannot_point_at_internal_addresses(client_with, session, directory, url):
    _, auth = admin_auth(session)
    strict = client_with(**STRICT)
    body = {**connector_fields(directory, server_urls=[url]), "bind_password": ROOT_PASSWORD}
    refused = strict.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert refused.status_code == 400, refused.json
    assert "not allowed" in refused.json["detail"]
    assert session.scalar(select(func.count()).select_from(DirectoryConnector)) == 0
    session.rollback()


def test_a_stored_connector_never_sends_its_password_to_a_refused_address(
    client, client_with, session, directory, listener
):
    """Saved while loopback was allowed; once the policy refuses it, nothing is sent."""
    _, auth = admin_auth(session)
    url = f"ldap://127.0.0.1:{listener.port}"
    body = {**connector_fields(directory, server_urls=[url]), "bind_password": ROOT_PASSWORD}
    created = client.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.json
    tested = client_with(**STRICT).post(
        f"/api/v1/directory/connectors/{created.json['id']}/test", headers=auth
    )
    assert tested.status_code == 200
    assert tested.json["ok"] is False and "loopback" in tested.json["error"]
    assert listener.connections == 0 and ROOT_PASSWORD.encode() not in listener.received


def test_an_allow_listed_network_is_reachable(client_with, session, directory):
    _, auth = admin_auth(session)
    allowed = client_with(outbound_allow_loopback=False, outbound_allowed_networks="127.0.0.1/32")
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    created = allowed.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.json
    tested = allowed.post(f"/api/v1/directory/connectors/{created.json['id']}/test", headers=auth)
    assert tested.json["ok"] is True, tested.json


def test_ca_file_must_lie_in_the_ca_directory(client, session, directory, tmp_path):
    _, auth = admin_auth(session)
    base = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    answers = {}
    for probe in ("/etc/passwd", "/etc/no-such-file", "../../../../etc/hostname", "missing.pem"):
        answer = client.post(
            "/api/v1/directory/connectors", json={**base, "ca_file": probe}, headers=auth
        )
        assert answer.status_code == 400, (probe, answer.status_code)
        answers[probe] = answer.json["detail"]
    # An existing file outside the directory and a missing one get the same answer.
    assert len(set(answers.values())) == 1
    assert session.scalar(select(func.count()).select_from(DirectoryConnector)) == 0
    session.rollback()
    good = client.post(
        "/api/v1/directory/connectors",
        json={**base, "ca_file": str(directory.slapd.tls.ca_file)},
        headers=auth,
    )
    assert good.status_code == 201, good.json


def test_a_ca_file_that_disappeared_is_reported_not_a_500(client, session, directory, tmp_path):
    _, auth = admin_auth(session)
    ca = directory.slapd.directory / f"gone-{uuid.uuid4().hex}.pem"
    ca.write_bytes(directory.slapd.tls.ca_file.read_bytes())
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD, "ca_file": str(ca)}
    created = client.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.json
    ca.unlink()
    tested = client.post(f"/api/v1/directory/connectors/{created.json['id']}/test", headers=auth)
    assert tested.status_code == 200
    assert tested.json["ok"] is False and "LDAP_CA_DIRECTORY" in tested.json["error"]


def test_ca_file_is_refused_without_a_ca_directory(client_with, session, directory):
    _, auth = admin_auth(session)
    body = {**connector_fields(directory), "ca_file": str(directory.slapd.tls.ca_file)}
    refused = client_with(ldap_ca_directory="").post(
        "/api/v1/directory/connectors", json=body, headers=auth
    )
    assert refused.status_code == 400 and "LDAP_CA_DIRECTORY" in refused.json["detail"]


def test_unreachable_ports_are_indistinguishable(client, session, directory, listener):
    """Closed, silent, not-LDAP and TLS-to-plaintext ports give the same answer."""
    _, auth = admin_auth(session)
    with socket.socket() as http_like, refused_port() as closed:
        http_like.bind(("127.0.0.1", 0))
        http_like.listen(4)
        stop = threading.Event()

        def answer_garbage() -> None:
            http_like.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = http_like.accept()
                except TimeoutError:
                    continue
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                conn.close()

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        urls = [
            f"ldap://127.0.0.1:{closed}",
            f"ldap://127.0.0.1:{listener.port}",
            f"ldap://127.0.0.1:{http_like.getsockname()[1]}",
            f"ldaps://127.0.0.1:{directory.slapd.port}",
        ]
        errors = set()
        for n, url in enumerate(urls):
            fields = connector_fields(
                directory, name=f"probe{n}", server_urls=[url], search_timeout=0.5
            )
            created = client.post(
                "/api/v1/directory/connectors",
                json={**fields, "bind_password": ROOT_PASSWORD},
                headers=auth,
            )
            tested = client.post(
                f"/api/v1/directory/connectors/{created.json['id']}/test", headers=auth
            )
            assert tested.json["ok"] is False
            errors.add((tested.json["error_code"], tested.json["error"].replace(url, "URL")))
        stop.set()
        thread.join()
    assert len(errors) == 1, errors


def test_the_connection_test_uses_short_timeouts(client, session, directory, listener):
    """A connector allowed an hour for a sync search still gets a short test in the request."""
    _, auth = admin_auth(session)
    fields = connector_fields(
        directory,
        server_urls=[f"ldap://127.0.0.1:{listener.port}"],
        connect_timeout=300.0,
        search_timeout=3600.0,
    )
    created = client.post(
        "/api/v1/directory/connectors",
        json={**fields, "bind_password": ROOT_PASSWORD},
        headers=auth,
    )
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            client.post(
                f"/api/v1/directory/connectors/{created.json['id']}/test", headers=auth
            ).json
        ),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=60)  # the test allows 3 + 5 s; without the bound it would wait an hour
    assert not thread.is_alive()
    assert outcome["ok"] is False and outcome["error_code"] == "directory_unavailable"
