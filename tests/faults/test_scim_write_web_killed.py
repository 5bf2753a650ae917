"""A web process SIGKILLed right after a SCIM deactivation committed, before it answered: the
IdP saw its connection drop and sends the same PATCH again (Okta and Entra ID retry a request
that got no answer). Everything the deactivation caused committed with it (the revocation,
the key cut off, the audit event, the work for the worker); the retry finds her inactive and
changes nothing: one revocation, one audit event, her colleague untouched."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, select

from models.entities import AuditEvent, Revocation, User, VirtualApiKey
from models.enums import UserStatus
from tests.scim.conftest import SCIM, ops
from tests.scim.payloads import okta_create_user
from tests.support import factories as f
from tests.support.parallel import in_thread
from tests.support.served import web_alone
from tests.support.wait import wait_until
from tests.support.worker import settings_env

pytestmark = pytest.mark.slow


def test_a_deactivation_whose_web_died_before_answering_is_applied_once_through_the_retry(
    session, sessions, settings, client, tmp_path
):
    org = f.make_org(session)
    headers = {"Authorization": f"Bearer {f.scim_token(session, org)}", "Content-Type": SCIM}
    session.commit()
    scim_ids = {}
    for email in ("pat@example.com", "kim@example.com"):
        body = okta_create_user(email, f"ext-{email}")
        created = client.post("/scim/v2/Users", json=body, headers=headers)
        assert created.status_code == 201, created.get_data(as_text=True)
        scim_ids[email] = created.get_json()["id"]
    people = {}
    for email, scim_id in scim_ids.items():
        user = session.scalars(select(User).where(User.email_key == email)).one()
        people[email] = (scim_id, user.id, f.make_key(session, org, owner=user).id)
    session.commit()  # SQLite: the test's transaction holds the write lock until then
    scim_id, pat, pat_key = people["pat@example.com"]
    _, kim, kim_key = people["kim@example.com"]
    patch = ops({"op": "replace", "path": "active", "value": False})
    setup = (
        "import tests.support.held_commit as h; "
        f"h.install({str(pat)!r}, {str(tmp_path)!r}, held='revocation of')"
    )

    with web_alone(settings_env(settings), tmp_path, setup=setup) as url:
        sent, out = in_thread(
            lambda: requests.patch(
                f"{url}/scim/v2/Users/{scim_id}", json=patch, headers=headers, timeout=60
            )
        )
        wait_until(lambda: (tmp_path / "held").exists(), what="the deactivation's commit")
        (tmp_path / "go").touch()
        sent.join(60)
    assert isinstance(out.get("error"), requests.ConnectionError), out  # no answer came
    assert _state(sessions, pat, pat_key) == (UserStatus.REVOKED, True, 1, 1)  # all committed

    retried = client.patch(f"/scim/v2/Users/{scim_id}", json=patch, headers=headers)

    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json()["active"] is False
    assert _state(sessions, pat, pat_key) == (UserStatus.REVOKED, True, 1, 1)
    assert _state(sessions, kim, kim_key) == (UserStatus.ACTIVE, False, 0, 0)


def _state(sessions, user_id, key_id) -> tuple[UserStatus, bool, int, int]:
    """Her status, whether her key is revoked, her revocations and `user.revoked` events."""
    with sessions() as fresh:
        revocations = fresh.scalar(
            select(func.count()).select_from(Revocation).where(Revocation.user_id == user_id)
        )
        revoked_events = fresh.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "user.revoked", AuditEvent.target_id == str(user_id))
        )
        return (
            fresh.get_one(User, user_id).status,
            fresh.get_one(VirtualApiKey, key_id).revoked,
            revocations or 0,
            revoked_events or 0,
        )
