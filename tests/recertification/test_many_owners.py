"""A campaign whose owners outnumber what one SQLite statement may name (32,766 bound
parameters in SQLite's default build; Debian's allows 250,000, so the test sets the default):
the opening notification still reaches every one of them."""

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models.actions import notification_deliveries, recertification
from models.base import new_id, utcnow
from models.entities import NotificationDelivery, User, VirtualApiKey
from models.enums import KeyType, Role, UserStatus
from models.notifications import TASK_DISPATCH
from tests.recertification.conftest import configure
from tests.reviews.conftest import outbox_tasks
from tests.support import factories as f

OWNERS = 32_800
BATCH = 5_000


def _owners_with_an_unused_key(session, org) -> None:
    long_ago = utcnow() - timedelta(days=200)
    user_ids = [new_id() for _ in range(OWNERS)]
    people = [
        {
            "id": uid,
            "organisation_id": org.id,
            "name": f"Owner {n}",
            "email": f"owner{n}@many.example",
            "email_key": f"owner{n}@many.example",
            "role": Role.USER,
            "status": UserStatus.ACTIVE,
            "created_at": long_ago,
            "updated_at": long_ago,
        }
        for n, uid in enumerate(user_ids)
    ]
    keys = [
        {
            "id": new_id(),
            "organisation_id": org.id,
            "key_type": KeyType.USER,
            "owner_user_id": uid,
            "created_by_user_id": uid,
            "name": f"key {n}",
            "masked_value": "sk-...0000",
            "revoked": False,
            "version": 0,
            "created_at": long_ago,
            "updated_at": long_ago,
        }
        for n, uid in enumerate(user_ids)
    ]
    for entity, rows in ((User, people), (VirtualApiKey, keys)):
        for start in range(0, len(rows), BATCH):
            session.execute(insert(entity), rows[start : start + BATCH])


@pytest.fixture
def default_sqlite_limit(session: Session) -> Iterator[None]:
    """SQLite's default limit on bound parameters, on the session's connection."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's limit (PostgreSQL's, 65,535, takes twice the owners)")
    connection = session.connection().connection.dbapi_connection
    assert isinstance(connection, sqlite3.Connection)
    was = connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
    yield
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, was)


@pytest.mark.usefixtures("default_sqlite_limit")
def test_the_opening_notification_reaches_more_owners_than_one_statement_can_name(session):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    _owners_with_an_unused_key(session, org)
    configure(session, org, spend_days=None, moved_people=False)
    opened = recertification.open_campaign(session, organisation_id=org.id, actor=f.SETUP)
    assert opened.campaign.report["in_scope"]["keys"] == OWNERS
    session.flush()  # never committed: the relay would publish one delivery task per owner

    ((_, dispatch),) = [
        (task, kwargs)
        for task, kwargs in outbox_tasks(session)
        if task == TASK_DISPATCH and kwargs["event"] == recertification.EVENT_OPENED
    ]
    assert len(dispatch["recipient_user_ids"]) == OWNERS + 1
    notification_deliveries.plan_deliveries(
        session,
        event_id=dispatch["event_id"],
        organisation_id=org.id,
        event=dispatch["event"],
        payload=dispatch["payload"],
        recipient_user_ids=[*map(uuid.UUID, dispatch["recipient_user_ids"]), admin.id],
    )
    told = session.scalar(
        select(func.count(func.distinct(NotificationDelivery.recipient_user_id))).where(
            NotificationDelivery.event_id == dispatch["event_id"]
        )
    )
    assert told == OWNERS + 1  # every owner and the admin, once (the admin was named twice)
    session.rollback()
