"""Migration 0043_email_keys: the keys of the addresses stored before are those of the one
rule (connectors.email_address); a key another person of the organisation holds already
stays as it was."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from models.entities import Invitation, Organisation, User
from models.entities.invitation import PendingInvitation
from models.enums import InvitationStatus, Role, UserStatus
from models.migrate import upgrade
from tests.support.migration_db import downgrade, own_database

BEFORE = "0042_oidc_callback_ids"
NFD = unicodedata.normalize("NFD", "jos\u00e9@corp.example")


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def test_keys_are_written_again_by_the_one_rule(blank_engine: Engine) -> None:
    upgrade(blank_engine, BEFORE)
    now = datetime.now(UTC)
    org = uuid.uuid4()
    emails = {
        "plain": "Ann.Lee@Corp.Example",
        "a_label": "bo@xn--bcher-kva.example",
        "nfd": NFD,
        "u_label": "cy@b\u00fccher.example",
        "clash": "cy@xn--bcher-kva.example",  # the old rule kept it apart from u_label
    }
    people = {name: uuid.uuid4() for name in emails}
    invitation = uuid.uuid4()
    with blank_engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org, name="Org", slug="org", created_at=now, updated_at=now
            )
        )
        for name, email in emails.items():
            connection.execute(
                insert(User.__table__).values(
                    id=people[name], organisation_id=org, name=name, email=email,
                    email_key=email.strip().lower(), role=Role.USER, status=UserStatus.ACTIVE,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        connection.execute(
            insert(Invitation.__table__).values(
                id=invitation, organisation_id=org, email="Di@XN--BCHER-KVA.example",
                email_key="di@xn--bcher-kva.example", role=Role.USER,
                status=InvitationStatus.PENDING, token_hash="h" * 64, expires_at=now,
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
        connection.execute(
            insert(PendingInvitation.__table__).values(
                invitation_id=invitation, organisation_id=org,
                email_key="di@xn--bcher-kva.example",
            )
        )  # fmt: skip

    upgrade(blank_engine, "head")

    with blank_engine.connect() as connection:
        keys = dict(connection.execute(select(User.id, User.email_key)).all())
        invited = connection.scalar(select(Invitation.email_key))
        pending = connection.scalar(select(PendingInvitation.email_key))
    assert keys[people["plain"]] == "ann.lee@corp.example"
    assert keys[people["a_label"]] == "bo@b\u00fccher.example"
    assert keys[people["nfd"]] == "jos\u00e9@corp.example"
    assert keys[people["u_label"]] == "cy@b\u00fccher.example"
    assert keys[people["clash"]] == "cy@xn--bcher-kva.example"  # u_label holds the new key
    assert invited == pending == "di@b\u00fccher.example"

    downgrade(blank_engine, BEFORE)
    with blank_engine.connect() as connection:
        keys = dict(connection.execute(select(User.id, User.email_key)).all())
    assert keys[people["a_label"]] == "bo@xn--bcher-kva.example"
    assert keys[people["nfd"]] == NFD
