"""The signed acceptance webhook: signature on the raw body, replay and staleness refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from connectors.signed_webhooks import new_signing_secret, sign
from models.actions import lifecycle
from models.entities import AuditEvent, Invitation, ReceivedDelivery, User
from models.enums import InvitationStatus, UserStatus
from tests.invitations.conftest import HOOK_SECRET, OLD_HOOK_SECRET
from tests.support import factories as f

EMAIL = "hook.person@example.com"


@pytest.fixture
def issued(session, scene):
    issued = scene.invite(session, EMAIL, teams=[])
    session.commit()
    return issued


def post(client, slug, payload, *, secret=HOOK_SECRET, msg_id=None, timestamp=None, body=None):
    raw = body if body is not None else json.dumps(payload).encode()
    headers = sign(
        secret, msg_id=msg_id or f"msg_{uuid.uuid4().hex}", body=raw, timestamp=timestamp
    )
    return client.post(
        f"/hooks/enrollment/{slug}",
        data=raw,
        headers={**headers, "Content-Type": "application/json"},
    )


def unchanged(session, issued):
    session.expire_all()
    assert session.get(Invitation, issued.invitation.id).status is InvitationStatus.PENDING
    assert session.scalar(select(func.count(User.id)).where(User.email_key == EMAIL)) == 0


def test_signed_webhook_accepts(session, scene, issued, enroll_client):
    payload = {"token": issued.token, "email": EMAIL, "name": "Hook Person"}
    response = post(enroll_client, scene.org.slug, payload)
    assert response.status_code == 200, response.json
    assert response.json["user_status"] == "ACTIVE" and response.json["created"] is True
    user = session.scalar(select(User).where(User.email_key == EMAIL))
    assert user.status is UserStatus.ACTIVE
    stored = session.scalar(select(ReceivedDelivery))
    assert issued.token not in json.dumps(stored.payload) and stored.status == "processed"


def test_rotated_out_secret_still_verifies(scene, issued, enroll_client):
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    assert post(enroll_client, scene.org.slug, payload, secret=OLD_HOOK_SECRET).status_code == 200


def test_replayed_webhook_id_is_refused(session, scene, issued, enroll_client):
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    assert post(enroll_client, scene.org.slug, payload, msg_id="msg_once").status_code == 200
    replay = post(enroll_client, scene.org.slug, payload, msg_id="msg_once")
    assert replay.status_code == 409 and replay.json["title"] == "replayed"


def test_bad_signatures_and_stale_timestamps(session, scene, issued, enroll_client):
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    slug = scene.org.slug
    wrong_secret = post(enroll_client, slug, payload, secret=new_signing_secret())
    stale = post(enroll_client, slug, payload, timestamp=datetime.now(UTC) - timedelta(minutes=10))
    future = post(enroll_client, slug, payload, timestamp=datetime.now(UTC) + timedelta(minutes=10))
    raw = json.dumps(payload).encode()
    headers = sign(HOOK_SECRET, msg_id="msg_x", body=raw)
    tampered = enroll_client.post(
        f"/hooks/enrollment/{slug}",
        data=raw.replace(b"H", b"M"),
        headers={**headers, "Content-Type": "application/json"},
    )
    unsigned = enroll_client.post(f"/hooks/enrollment/{slug}", json=payload)
    garbage = enroll_client.post(
        f"/hooks/enrollment/{slug}",
        json=payload,
        headers={"webhook-id": "x", "webhook-timestamp": "soon", "webhook-signature": "v1,zz"},
    )
    for response in (wrong_secret, stale, future, tampered, unsigned, garbage):
        assert response.status_code == 401, response.json
        assert response.mimetype == "application/problem+json"
    assert "tolerance" in stale.json["detail"]
    unchanged(session, issued)


def test_refusals_in_order_and_nothing_changes(session, scene, issued, enroll_client):
    slug = scene.org.slug
    cases = [
        ({"token": "inv_" + "A" * 43, "email": EMAIL, "name": "H"}, 404, "invitation_unknown"),
        ({"token": "nonsense", "email": EMAIL, "name": "H"}, 404, "invitation_unknown"),
        ({"token": issued.token, "email": "other@example.com", "name": "H"}, 403, "wrong_account"),
        ({"token": issued.token, "email": EMAIL}, 400, "invalid_input"),
        ({"token": issued.token, "email": EMAIL, "name": "H", "admin": True}, 400, "invalid_input"),
        ({"token": issued.token, "email": EMAIL, "name": " "}, 400, "invalid_input"),
    ]
    for payload, status, title in cases:
        response = post(enroll_client, slug, payload)
        assert (response.status_code, response.json["title"]) == (status, title), payload
    not_utf8_body = b"\xff\xfe not json"
    not_utf8 = enroll_client.post(
        f"/hooks/enrollment/{slug}",
        data=not_utf8_body,
        headers={
            **sign(HOOK_SECRET, msg_id="msg_b", body=not_utf8_body),
            "Content-Type": "application/json",
        },
    )  # signed as sent: the body's own fault, not the signature's
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json["detail"], not_utf8.json
    bad_json = post(enroll_client, slug, None, body=b"{not json")
    assert bad_json.status_code == 400
    unchanged(session, issued)
    assert session.scalar(select(func.count(ReceivedDelivery.id))) == 0


def test_token_for_another_organisation_is_unknown(session, scene, issued, enroll_client):
    other = f.make_org(session)
    session.commit()
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    response = post(enroll_client, other.slug, payload)
    assert response.status_code == 404 and response.json["title"] == "invitation_unknown"
    assert post(enroll_client, "no-such-org", payload).status_code == 404
    unchanged(session, issued)


def test_used_link_via_webhook(session, scene, issued, enroll_client):
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    assert post(enroll_client, scene.org.slug, payload).status_code == 200
    again = post(enroll_client, scene.org.slug, payload)
    assert again.status_code == 409 and again.json["title"] == "invitation_used"


def test_not_configured_is_404(scene, issued, client):
    payload = {"token": issued.token, "email": EMAIL, "name": "H"}
    assert post(client, scene.org.slug, payload).status_code == 404


def test_a_revoked_persons_accept_is_refused_and_the_refusal_audited(
    session, scene, issued, enroll_client
):
    """As on the enrollment page: a 409, nothing of the accept kept, one audit event on the
    REVOKED person; the delivery is kept as rejected with the reason."""
    leaver = f.make_user(session, scene.org, email=EMAIL)
    leaver_id = leaver.id
    lifecycle.revoke(session, user=leaver, actor=f.SETUP)
    session.commit()
    slug, invitation_id = scene.org.slug, issued.invitation.id
    seen = set(session.scalars(select(AuditEvent.id)))
    session.rollback()  # SQLite: let the app take the write lock
    payload = {"token": issued.token, "email": EMAIL, "name": "Hook Person"}
    response = post(enroll_client, slug, payload)
    assert response.status_code == 409, response.json
    assert "already has an account here (REVOKED)" in response.json["detail"]
    session.expire_all()
    assert session.get(Invitation, invitation_id).status is InvitationStatus.PENDING
    assert session.get_one(User, leaver_id).status is UserStatus.REVOKED
    new = [e for e in session.scalars(select(AuditEvent)) if e.id not in seen]
    assert [(e.action, e.target_id, e.after["user_status"]) for e in new] == [
        ("user.invitation_accept_refused", str(leaver_id), "REVOKED")
    ]
    assert new[0].after["invitation_id"] == str(invitation_id)
    stored = session.scalar(select(ReceivedDelivery))
    assert stored.status == "rejected" and "REVOKED" in stored.outcome
