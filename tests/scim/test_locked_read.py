"""A SCIM write reads the user it locks as rows and puts them in the session as a load would
(models.loaded_rows); over entities the session already holds it loads them afresh."""

from __future__ import annotations

import uuid

from sqlalchemy import inspect, update
from sqlalchemy.orm import Session

from models import loaded_rows
from models.actions import scim as scim_actions
from models.base import new_row
from models.db import SessionFactory
from models.entities import Organisation, ScimEmail, ScimUser
from tests.scim.conftest import ScimClient


def _created(scim: ScimClient) -> str:
    made = scim.post(
        "/Users",
        {
            "userName": "lee@example.com",
            "displayName": "Lee",
            "emails": [{"value": "lee@example.com", "type": "work", "primary": True}],
        },
    )
    assert made.status_code == 201, made.json
    scim_id: str = made.json["id"]
    return scim_id


def test_the_locked_user_is_in_the_session_as_loaded(
    scim: ScimClient, sessions: SessionFactory, org: Organisation
) -> None:
    """Persistent, nothing pending, its person and emails with it; a change of it is written
    as a loaded one's would be."""
    scim_id = _created(scim)
    with sessions() as session:
        locked = scim_actions.lock_scim_user(session, org.id, scim_id)
        scim_user = locked.scim_user
        assert inspect(scim_user).persistent and not session.dirty and not session.new
        assert inspect(scim_user.user).persistent
        assert [e.value for e in scim_user.emails] == ["lee@example.com"]
        assert scim_user.emails[0].scim_user is scim_user
        assert session.get(ScimUser, scim_user.id) is scim_user  # no second load
        scim_user.display_name = "Lee Changed"
        scim_user.emails = [
            new_row(
                ScimEmail,
                organisation_id=org.id,
                position=0,
                value="lee@example.org",
                value_key="lee@example.org",
                type="work",
                primary=True,
            )
        ]
        session.commit()
    answer = scim.get(f"/Users/{scim_id}").json
    assert answer["displayName"] == "Lee Changed"
    assert [e["value"] for e in answer["emails"]] == ["lee@example.org"]


def test_a_lock_over_entities_the_session_holds_reads_them_afresh(
    scim: ScimClient, sessions: SessionFactory, session: Session, org: Organisation
) -> None:
    scim_id = _created(scim)
    with sessions() as holder:
        held = holder.get_one(ScimUser, uuid.UUID(scim_id))
        assert held.user.name and held.emails
        holder.commit()
        session.execute(
            update(ScimUser).where(ScimUser.id == held.id).values(display_name="Elsewhere")
        )
        session.commit()
        locked = scim_actions.lock_scim_user(holder, org.id, scim_id)
        assert locked.scim_user is held and held.display_name == "Elsewhere"
        assert not holder.dirty and not holder.new


def test_entities_the_session_holds_already_are_not_attached_again(
    scim: ScimClient, sessions: SessionFactory
) -> None:
    scim_id = _created(scim)
    with sessions() as session:
        held = session.get_one(ScimUser, uuid.UUID(scim_id))
        columns = {p.key: getattr(held, p.key) for p in ScimUser.__mapper__.column_attrs}
        assert not loaded_rows.attach_loaded(session, [new_row(ScimUser, **columns)])
        assert session.get(ScimUser, held.id) is held
