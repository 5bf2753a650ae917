"""Odock in bridged mode: the stand-in (tests/support/odock), a worker and an app on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from models.actions import tokens
from models.actions.users import find_user_by_email
from models.db import SessionFactory, make_session_factory
from models.entities import Organisation, User
from models.enums import Role, TokenScope
from models.settings import Settings
from tests.scim.payloads import okta_create_user
from tests.support import factories as f
from tests.support.apps import Apps
from tests.support.odock import OdockStandIn, start_stand_in
from tests.support.odock.adapter import push_keys
from tests.support.worker import WorkerProcess, start_worker

SCIM = "application/scim+json"


@pytest.fixture(scope="session")
def odock(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdockStandIn]:
    stand_in = start_stand_in(
        odock_sync_database_url=database_url, workdir=tmp_path_factory.mktemp("odock")
    )
    yield stand_in
    stand_in.stop()


@pytest.fixture(autouse=True)
def fresh_odock(odock: OdockStandIn) -> Iterator[OdockStandIn]:
    """A clean stand-in; afterwards, every request odock-sync sent it kept the document."""
    odock.reset()
    yield odock
    broken = odock.contract.take()
    assert broken == [], "odock-sync sent what its OpenAPI document does not allow:\n" + (
        "\n".join(broken)
    )


def bridged(settings: Settings, odock: OdockStandIn, **changes: object) -> Settings:
    """odock-sync's settings pointed at the stand-in, with fast retries, on a queue of its own."""
    return settings.model_copy(
        update={
            "odock_mode": "bridged",
            "odock_management_url": odock.management_url,
            "odock_management_token": odock.management_token,
            "odock_command_secret": odock.command_secret,
            "gateway_url": odock.gateway_url,
            "gateway_secret": odock.gateway_secret,
            "odock_timeout": 1.0,
            "cutoff_retry_base": 0.1,
            "cutoff_retry_max": 0.5,
            "odock_reinvalidate_after": 0.5,
            "celery_queue": f"{settings.celery_queue}-bridged",
            **changes,
        }
    )


@pytest.fixture(scope="module")
def bridged_settings(settings: Settings, odock: OdockStandIn) -> Settings:
    return bridged(settings, odock)


@pytest.fixture(scope="module")
def bridged_worker(
    settings: Settings,
    bridged_settings: Settings,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
    metrics_dir: Path,
) -> Iterator[WorkerProcess]:
    """A real worker in bridged mode; this process publishes to its queue meanwhile."""
    from worker.celery_app import configure_celery

    configure_celery(bridged_settings)
    process = start_worker(
        bridged_settings,
        log_dir=Path(tmp_path_factory.mktemp("worker")),
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    yield process
    process.stop()
    configure_celery(settings)


@pytest.fixture(scope="session")
def bridged_sessions(engine: Engine) -> SessionFactory:
    from worker.outbox_relay import install_after_commit_relay

    factory = make_session_factory(engine, odock_mode="bridged")
    install_after_commit_relay(factory)
    return factory


@pytest.fixture
def bridged_session(bridged_sessions: SessionFactory, clean_db: None) -> Iterator[Session]:
    with bridged_sessions() as session:
        yield session


@pytest.fixture
def bridged_client(apps: Apps, bridged_settings: Settings, clean_db: None) -> FlaskClient:
    return apps.for_settings(bridged_settings).test_client()


@dataclass
class KeyHolder:
    """A person provisioned by SCIM who holds a key made in the stand-in."""

    org: Organisation
    admin: User
    user_id: uuid.UUID
    scim_id: str
    scim_token: str
    odock_token: str
    key_id: uuid.UUID
    key_value: str


def provision_key_holder(
    session: Session, client: FlaskClient, odock: OdockStandIn, email: str = "leaver@example.com"
) -> KeyHolder:
    """The person arrives by SCIM; their key is made in the stand-in and pushed to odock-sync
    through /odock/v1, as the adapter beside Odock does."""
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN, email=f"admin-{org.slug}@example.com")
    token = f.scim_token(session, org)
    odock_token = tokens.create_token(
        session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP
    ).secret
    session.commit()
    created = client.post(
        "/scim/v2/Users",
        json=okta_create_user(email, external_id=f"ext-{uuid.uuid4().hex[:8]}"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
    )
    assert created.status_code == 201, created.json
    user = find_user_by_email(session, org.id, email)
    assert user is not None
    session.commit()
    key_id, value = odock.store.create_key(org.id, owner_user_id=user.id)
    push_keys(client, odock_token, odock, org.id)
    return KeyHolder(org, admin, user.id, created.json["id"], token, odock_token, key_id, value)


def deactivate(client: FlaskClient, holder: KeyHolder) -> None:
    from tests.scim.payloads import okta_deactivate

    response = client.patch(
        f"/scim/v2/Users/{holder.scim_id}",
        json=okta_deactivate(),
        headers={"Authorization": f"Bearer {holder.scim_token}", "Content-Type": SCIM},
    )
    assert response.status_code == 200, response.json


def reactivate(session: Session, client: FlaskClient, holder: KeyHolder) -> None:
    """The holder's admin reactivates the person through the admin API."""
    token = f.admin_token(session, holder.org, holder.admin)
    session.commit()
    answer = client.post(
        f"/api/v1/users/{holder.user_id}/reactivate",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.get_json()
