"""A stand-in for Odock, as real as the contract (docs/odock.md): a management plane with a
key store in a database of its own, and a gateway that authenticates keys from Redis.

Both are real HTTP servers on loopback ports, served from threads of the test process; the
Redis is a redis-server of their own, which a test may kill. Faults: the store can answer 500
or hang (`store_faults`), the gateway can ignore invalidations (`gateway_faults`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests
from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connectors.signed_webhooks import new_signing_secret
from tests.support.odock.contract import ContractLog, watch
from tests.support.odock.gateway import (
    Gateway,
    GatewayFaults,
    GatewayLog,
    create_gateway_app,
)
from tests.support.odock.management import (
    ManagementLog,
    StoreFaults,
    create_management_app,
)
from tests.support.odock.store import KeyStore, create_database, drop_database
from tests.support.redis_server import RedisServer

__all__ = ["OdockStandIn", "start_stand_in"]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


def serve(app: Flask) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@dataclass
class OdockStandIn:
    store: KeyStore
    redis: RedisServer
    management_url: str
    gateway_url: str
    command_secret: str
    management_token: str
    gateway_secret: str
    servers: list[BaseWSGIServer]
    drop: tuple[str, str] | None  # (admin URL, database) to drop on stop
    store_faults: StoreFaults = field(default_factory=StoreFaults)
    gateway_faults: GatewayFaults = field(default_factory=GatewayFaults)
    commands_seen: ManagementLog = field(default_factory=ManagementLog)
    invalidations: GatewayLog = field(default_factory=GatewayLog)
    contract: ContractLog = field(default_factory=ContractLog)  # what broke the document

    def call(self, key_value: str) -> int:
        """A real request through the gateway with this key; its HTTP status."""
        response = requests.post(
            self.gateway_url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key_value}"},
            timeout=5,
        )
        return response.status_code

    def reset(self) -> None:
        """A clean store, cache, logs and no faults, for the next test."""
        self.store_faults.heal()
        self.store_faults.release.clear()
        self.store_faults.hang_limit = 30.0
        self.gateway_faults.ignore_invalidations = False
        self.gateway_faults.heal()
        self.gateway_faults.release.clear()
        self.store.clear()
        self.contract.take()
        if self.redis.process is None:
            self.redis.start()
        self.redis.client().flushall()
        with self.commands_seen.lock:
            self.commands_seen.commands.clear()
            self.commands_seen.arrived.clear()
        with self.invalidations.lock:
            self.invalidations.invalidations.clear()
            self.invalidations.answers.clear()
            self.invalidations.status_asks.clear()

    def stop(self) -> None:
        self.store_faults.heal()
        self.gateway_faults.heal()
        for server in self.servers:
            server.shutdown()
        self.redis.kill()
        self.store.close()
        if self.drop:
            drop_database(*self.drop)


def start_stand_in(*, odock_sync_database_url: str, workdir: Path) -> OdockStandIn:
    """Start the stand-in beside odock-sync's database: a PostgreSQL database of its own when
    odock-sync runs on PostgreSQL, else a SQLite file in `workdir`."""
    database_url, drop = _store_database(odock_sync_database_url, workdir)
    store = KeyStore(database_url)
    redis_server = RedisServer(workdir).start()
    secrets = {
        "command_secret": new_signing_secret(),
        "management_token": "odock-management-token",
        "gateway_secret": "odock-gateway-secret",
    }
    management_log, gateway_log = ManagementLog(), GatewayLog()
    store_faults, gateway_faults = StoreFaults(), GatewayFaults()
    contract = ContractLog()
    management_app = create_management_app(
        store,
        secret=secrets["command_secret"],
        token=secrets["management_token"],
        faults=store_faults,
        log=management_log,
    )
    watch(management_app, "x-management-plane", contract)
    gateway_app = create_gateway_app(
        Gateway(store, redis_server.url),
        secret=secrets["gateway_secret"],
        faults=gateway_faults,
        log=gateway_log,
    )
    watch(gateway_app, "x-gateway", contract)
    management, management_url = serve(management_app)
    gateway, gateway_url = serve(gateway_app)
    return OdockStandIn(
        store=store,
        redis=redis_server,
        management_url=management_url,
        gateway_url=gateway_url,
        servers=[management, gateway],
        drop=drop,
        store_faults=store_faults,
        gateway_faults=gateway_faults,
        commands_seen=management_log,
        invalidations=gateway_log,
        contract=contract,
        **secrets,
    )


def _store_database(odock_sync_url: str, workdir: Path) -> tuple[str, tuple[str, str] | None]:
    if odock_sync_url.startswith("sqlite"):
        return f"sqlite:///{workdir / 'odock-stand-in.sqlite3'}", None
    url = make_url(odock_sync_url)
    # One per stand-in: a module's own stand-in and the session's can be up at once.
    name = f"{url.database}_{workdir.name}_standin"
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)
    return create_database(admin_url, name), (admin_url, name)
