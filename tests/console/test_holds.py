"""Held mass changes in the console: a batch approved applies, a batch discarded does not."""

from __future__ import annotations

from sqlalchemy import select

from models.actions import mass_change
from models.entities import AuditEvent, MassChange, User
from models.enums import ChangeStatus, UserStatus
from tests.console.conftest import csrf_of, sign_in
from tests.scim.conftest import ScimClient
from tests.scim.payloads import okta_create_user, okta_deactivate
from tests.support import factories as f


def _held_deactivations(client, session, org, emails: list[str]) -> None:
    """SCIM deactivates these people past a threshold of one: all but the first are held."""
    mass_change.set_thresholds(
        session, organisation=org.org, actor=f.SETUP, threshold_count=1, window_minutes=10
    )
    scim = ScimClient(client, f.scim_token(session, org.org))
    session.commit()
    for n, email in enumerate(emails):
        created = scim.post("/Users", okta_create_user(email, external_id=f"00uc{n}"))
        assert created.status_code == 201, created.json
        assert scim.patch(f"/Users/{created.json['id']}", okta_deactivate()).status_code == 200


def test_approve_a_held_batch_then_nothing_is_left(client, org, session, sessions):
    emails = ["h1@acme.example", "h2@acme.example", "h3@acme.example"]
    _held_deactivations(client, session, org, emails)
    sign_in(client, org.admin_token)
    page = client.get("/console/holds").get_data(as_text=True)
    assert "h2@acme.example" in page and "h3@acme.example" in page
    assert "Approve all 2" in page
    with sessions() as s:
        batch_id = s.scalar(select(MassChange.batch_id).where(MassChange.batch_id.is_not(None)))
    answer = client.post(f"/console/holds/batches/{batch_id}/approve", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    with sessions() as s:
        by_email = {u.email: u.status for u in s.scalars(select(User))}
        assert [by_email[e] for e in emails] == [UserStatus.REVOKED] * 3
        assert {h.status for h in s.scalars(select(MassChange))} >= {ChangeStatus.APPROVED}
        event = s.scalar(select(AuditEvent).where(AuditEvent.action.like("mass_change.approv%")))
        assert event is not None and event.actor == "ada@acme.example"
    assert 'id="no-holds"' in client.get("/console/holds").get_data(as_text=True)
    again = client.post(f"/console/holds/batches/{batch_id}/discard", data={"csrf": csrf_of(page)})
    assert again.status_code in (400, 409) and 'id="problem"' in again.get_data(as_text=True)
