"""pending_invitations lists exactly the pending invitations; the PostgreSQL sweep walks it by
page ranges; migration 0008 fills it from existing data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models.actions import invitations as inv
from models.actor import Actor
from models.base import new_id, utcnow
from models.db import make_engine
from models.entities import AuditEvent, Invitation, Organisation, PendingInvitation
from models.enums import InvitationStatus, Role
from models.migrate import alembic_config, upgrade


def _pending_ids(session) -> set[uuid.UUID]:
    return set(session.scalars(select(PendingInvitation.invitation_id)))


def test_pending_set_follows_every_status_change(session, scene):
    scene.org.settings.resend_cooldown_seconds = 0
    accepted = scene.invite(session, "accepted@example.com")
    revoked = scene.invite(session, "revoked@example.com").invitation
    expired = scene.invite(session, "expired@example.com").invitation
    open_ = scene.invite(session, "open@example.com").invitation
    session.commit()
    assert _pending_ids(session) == {accepted.invitation.id, revoked.id, expired.id, open_.id}

    inv.accept_invitation(session, token=accepted.token, email="accepted@example.com", name="A")
    admin = scene.actor(scene.admin_viewer)
    inv.revoke(session, viewer=scene.admin_viewer, invitation_id=revoked.id, actor=admin)
    expired.expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    assert inv.expire_overdue(session, now=utcnow(), limit=10, actor=Actor.schedule("t")) == 1
    session.commit()
    assert _pending_ids(session) == {open_.id}

    inv.resend(
        session,
        viewer=scene.admin_viewer,
        invitation_id=expired.id,
        actor=admin,
        secret_key=scene.secret_key,
    )
    session.commit()
    assert _pending_ids(session) == {open_.id, expired.id}


def test_an_expired_invitation_no_longer_blocks_its_email(session, scene):
    old = scene.invite(session, "again@example.com").invitation
    old.expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    inv.expire_overdue(session, now=utcnow(), limit=10, actor=Actor.schedule("t"))
    new = scene.invite(session, "again@example.com").invitation
    session.commit()
    assert _pending_ids(session) == {new.id}


@pytest.mark.usefixtures("clean_db")
def test_the_sweep_expires_the_overdue_ones_in_one_audited_batch(session, scene, engine):
    if engine.dialect.name == "postgresql":
        # clean_db deletes rows, which keeps the pages earlier tests filled: start from none.
        session.execute(text("TRUNCATE pending_invitations"))
        session.commit()
    now = utcnow()
    overdue = [scene.invite(session, f"o{i}@example.com").invitation for i in range(3)]
    for invitation in overdue:
        invitation.expires_at = now - timedelta(hours=1)
    current = scene.invite(session, "current@example.com").invitation
    session.commit()
    actor = Actor.schedule("t")
    if engine.dialect.name == "postgresql":  # the PostgreSQL sweep walks page ranges
        assert inv.pending_pages(session) == 1
        on_pages = inv.expire_overdue_on_pages
        assert on_pages(session, now=now, actor=actor, first_page=1, pages=5) == 0
        assert on_pages(session, now=now, actor=actor, first_page=0, pages=1) == 3
    else:
        assert inv.expire_overdue(session, now=now, limit=10, actor=actor) == 3
    session.commit()
    session.expire_all()
    assert [session.get(Invitation, i.id).status for i in overdue] == [InvitationStatus.EXPIRED] * 3
    assert session.get(Invitation, current.id).status is InvitationStatus.PENDING
    assert _pending_ids(session) == {current.id}
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "invitation.expired")
    ).one()
    assert event.after["count"] == 3 and set(event.after["ids"]) == {str(i.id) for i in overdue}
    assert inv.expire_overdue(session, now=now, limit=10, actor=actor) == 0  # idempotent


@pytest.fixture
def fresh_database_url(settings, engine: Engine, tmp_path) -> Iterator[str]:
    """An empty database of its own, of the same kind as the run's."""
    if engine.dialect.name != "postgresql":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    name = f"odock_test_migration_{uuid.uuid4().hex[:8]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migration_0008_lists_the_pending_invitations_and_goes_back(fresh_database_url, settings):
    own = make_engine(settings.model_copy(update={"database_url": fresh_database_url}))
    upgrade(own, "0007")
    with Session(own) as session:
        # A bare organisation row: the ORM's organisation settings carry later columns.
        org_id = new_id()
        session.execute(
            Organisation.__table__.insert().values(id=org_id, name="Old", slug=f"old-{org_id}")
        )
        ids = {status: new_id() for status in InvitationStatus}
        for status, invitation_id in ids.items():
            session.add(_invitation(invitation_id, org_id, status))
        session.commit()

    upgrade(own)
    with Session(own) as session:
        assert _pending_ids(session) == {ids[InvitationStatus.PENDING]}
    indexes = {index["name"] for index in inspect(own).get_indexes("invitations")}
    assert not indexes & {"ix_invitations_pending_expiry", "uq_invitations_pending_email"}
    if own.dialect.name == "postgresql":
        with own.connect() as connection:
            options = connection.scalar(
                text("SELECT reloptions FROM pg_class WHERE relname = 'invitations'")
            )
        assert options == ["fillfactor=50"]

    config = alembic_config()
    with own.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert "pending_invitations" not in inspect(own).get_table_names()
    indexes = {index["name"] for index in inspect(own).get_indexes("invitations")}
    assert {"ix_invitations_pending_expiry", "uq_invitations_pending_email"} <= indexes
    own.dispose()


def _invitation(invitation_id: uuid.UUID, organisation_id: uuid.UUID, status) -> Invitation:
    return Invitation(
        id=invitation_id,
        organisation_id=organisation_id,
        email="same@example.com",
        email_key="same@example.com",
        role=Role.USER,
        teams=[],
        status=status,
        token_hash=invitation_id.hex,
        expires_at=utcnow() + timedelta(days=1),
    )
