"""The console's Revoke never leaves the organisation without an active Organisation Admin
(models/actions/last_admin.py): the page says why and nothing changes. The one who acts is
the platform's SUPER_ADMIN working in the organisation (an admin cannot revoke themself, so
only someone who is not the last ORG_ADMIN can try)."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import AuditEvent, User
from models.enums import Role, UserStatus
from tests.console.conftest import csrf_of, sign_in
from tests.support import factories as f


def _platform_token(session, org) -> str:
    person = f.make_user(session, org.org, role=Role.ORG_ADMIN, email="platform@odock.example")
    person.role = Role.SUPER_ADMIN  # no operation grants it: a platform role
    secret = f.admin_token(session, org.org, person)
    session.commit()
    return secret


def _revoke_admin(client, org):
    page = client.get(f"/console/people/{org.admin.id}").get_data(as_text=True)
    assert 'id="revoke"' in page
    return client.post(
        f"/console/people/{org.admin.id}/revoke", data={"csrf": csrf_of(page), "reason": "left"}
    )


def test_revoking_the_last_admin_is_refused_on_the_page(client, org, session, sessions):
    sign_in(client, _platform_token(session, org))
    answer = _revoke_admin(client, org)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 409, text
    assert 'id="problem"' in text and "last active Organisation Admin" in text
    assert "Nothing was changed" in text and "Traceback" not in text
    with sessions() as s:
        admin = s.get_one(User, org.admin.id)
        assert (admin.role, admin.status) == (Role.ORG_ADMIN, UserStatus.ACTIVE)
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "user.revoked")) is None


def test_with_another_admin_the_revoke_is_made(client, org, session, sessions):
    f.make_user(session, org.org, role=Role.ORG_ADMIN, email="deputy@acme.example")
    sign_in(client, _platform_token(session, org))
    answer = _revoke_admin(client, org)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    with sessions() as s:
        assert s.get_one(User, org.admin.id).status is UserStatus.REVOKED
