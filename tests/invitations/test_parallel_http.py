"""One invitation changed by several requests at once, over real HTTP (the admin API and the
enrollment page): as if one came after the other, one audit event per change, no 500."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.actions import invitations as inv
from models.db import SessionFactory
from models.entities import AuditEvent, Invitation, User
from models.enums import InvitationStatus
from tests.invitations.conftest import IDENTITY_HEADER, Scene
from tests.support import factories as f
from tests.support.parallel import in_parallel

EMAIL = "racer@example.com"
Call = Callable[[], requests.Response]


class Admin:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.headers = f"{base}/api/v1/invitations", {"Authorization": f"Bearer {token}"}

    def post(self, invitation: Invitation, verb: str) -> Call:
        url = f"{self.base}/{invitation.id}/{verb}"
        return lambda: requests.post(url, headers=self.headers, timeout=60)


def accept(base: str, token: str) -> Call:
    """The invitee's browser: the page (for its form key), then the form sent back."""
    url, who = f"{base}/enroll/{token}", {IDENTITY_HEADER: EMAIL}
    page = requests.get(url, headers=who, timeout=30)
    assert page.status_code == 200, page.text
    key = re.search(r'name="form_key" value="([0-9a-f]+)"', page.text)
    assert key is not None
    form = {"name": "Racer", "form_key": key.group(1)}
    return lambda: requests.post(url, data=form, headers=who, timeout=60)


def audited(sessions: SessionFactory, invitation: Invitation) -> Counter[str]:
    with sessions() as fresh:
        return Counter(
            fresh.scalars(
                select(AuditEvent.action).where(AuditEvent.target_id == str(invitation.id))
            )
        )


def final(sessions: SessionFactory, invitation: Invitation) -> tuple[Invitation, int]:
    with sessions() as fresh:
        row = fresh.get_one(Invitation, invitation.id)
        users = fresh.scalar(select(func.count(User.id)).where(User.email_key == EMAIL))
        return row, users or 0


def arrange(session: Session, scene: Scene, live_server: str) -> tuple[inv.Issued, Admin]:
    scene.org.settings.resend_cooldown_seconds = 0
    scene.org.settings.resend_daily_cap = 100
    issued = scene.invite(session, EMAIL)
    admin = Admin(live_server, f.admin_token(session, scene.org, scene.admin))
    session.commit()
    return issued, admin


def test_two_resends_at_once_both_count(session, sessions, scene, live_server) -> None:
    """With no cooldown two resends serially both succeed: two fresh tokens, the count two.
    Each took its clock before waiting for the row, so the later could find the invitation
    'sent in the future' and be refused (429) as too soon."""
    issued, admin = arrange(session, scene, live_server)
    for _ in range(10):
        answers = in_parallel([admin.post(issued.invitation, "resend")] * 2)
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    row, _ = final(sessions, issued.invitation)
    assert row.resend_count == 20 and row.send_count == 21
    assert audited(sessions, issued.invitation)["invitation.resent"] == 20
    assert requests.get(f"{live_server}/enroll/{issued.token}", timeout=30).status_code == 404


def test_resend_racing_the_accept_is_one_or_the_other(session, sessions, scene, live_server):
    issued, admin = arrange(session, scene, live_server)
    answers = in_parallel(
        [accept(live_server, issued.token), admin.post(issued.invitation, "resend")]
    )
    accepted, resent = (r.status_code for r in answers)
    row, users = final(sessions, issued.invitation)
    events = audited(sessions, issued.invitation)
    if accepted == 200:  # the accept came first: the resend finds it used
        assert resent == 409 and row.status is InvitationStatus.ACCEPTED and users == 1
        assert events["invitation.accepted"] == 1 and events["invitation.resent"] == 0
    else:  # the resend came first: the old link is dead
        assert (accepted, resent) == (404, 200), [r.text[:300] for r in answers]
        assert row.status is InvitationStatus.PENDING and users == 0
        assert events["invitation.resent"] == 1 and events["invitation.accepted"] == 0


def test_revoke_racing_the_accept_is_one_or_the_other(session, sessions, scene, live_server):
    issued, admin = arrange(session, scene, live_server)
    answers = in_parallel(
        [accept(live_server, issued.token), admin.post(issued.invitation, "revoke")]
    )
    accepted, revoked = (r.status_code for r in answers)
    row, users = final(sessions, issued.invitation)
    events = audited(sessions, issued.invitation)
    if accepted == 200:
        assert revoked == 409 and row.status is InvitationStatus.ACCEPTED and users == 1
        assert events["invitation.revoked"] == 0
    else:
        assert revoked == 200 and accepted in (404, 410), [r.text[:300] for r in answers]
        assert row.status is InvitationStatus.REVOKED and users == 0
        assert events["invitation.accepted"] == 0 and events["invitation.revoked"] == 1


def test_two_browsers_accepting_at_once_make_one_person(session, sessions, scene, live_server):
    issued, _admin = arrange(session, scene, live_server)
    answers = in_parallel([accept(live_server, issued.token) for _ in range(10)])
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 1, 409: 9}, [r.text[:200] for r in answers]
    for refused in (r for r in answers if r.status_code == 409):  # the page says why
        assert "This invitation has already been used" in refused.text
    row, users = final(sessions, issued.invitation)
    assert row.status is InvitationStatus.ACCEPTED and users == 1
    assert audited(sessions, issued.invitation)["invitation.accepted"] == 1
