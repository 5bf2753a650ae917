"""The /enroll/<token> pages through the Flask test client: states, refusals, bad forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.actions import invitations as inv
from models.actions import lifecycle
from models.base import utcnow
from models.entities import AuditEvent, Invitation, User
from models.enums import InvitationStatus, Role, UserStatus
from tests.invitations.conftest import IDENTITY_HEADER
from tests.support import factories as f
from tests.support.streamed_body import ENDLESS, StreamedBody, chunked

EMAIL = "new.person@example.com"
FORM = "application/x-www-form-urlencoded"


def as_user(email=EMAIL):
    return {IDENTITY_HEADER: email}


def form_key(html: str) -> str:
    return re.search(r'name="form_key" value="([0-9a-f]+)"', html).group(1)


def kind(response) -> str:
    return re.search(r'data-kind="([a-z_]+)"', response.text).group(1)


@pytest.fixture
def issued(session, scene):
    issued = scene.invite(session, EMAIL, role=Role.MANAGER)
    session.commit()
    return issued


def nothing_changed(session, issued, status=InvitationStatus.PENDING):
    session.expire_all()
    assert session.get(Invitation, issued.invitation.id).status is status
    assert session.scalar(select(func.count(User.id)).where(User.email_key == EMAIL)) == 0


def test_page_shows_details_first_and_asks_to_sign_in(enroll_client, issued):
    response = enroll_client.get(f"/enroll/{issued.token}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.text
    for text in (EMAIL, "Acme Labs", "Manager", "pending", "UTC"):
        assert text in page.split("state-")[0]
    assert 'id="state-sign-in"' in page and "<form" not in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_accept_through_the_form(session, enroll_client, issued, scene):
    page = enroll_client.get(f"/enroll/{issued.token}", headers=as_user()).text
    assert 'id="state-ready"' in page
    done = enroll_client.post(
        f"/enroll/{issued.token}",
        data={"name": "Nina New", "form_key": form_key(page)},
        headers=as_user("New.Person@Example.com"),
    )
    assert done.status_code == 200, done.text
    assert "Welcome to Acme Labs" in done.text
    user = session.scalar(select(User).where(User.email_key == EMAIL))
    assert (user.status, user.role, user.name) == (UserStatus.ACTIVE, Role.MANAGER, "Nina New")
    session.rollback()  # SQLite: release the write lock before the app reads
    used = enroll_client.get(f"/enroll/{issued.token}", headers=as_user())
    assert used.status_code == 409 and kind(used) == "used"


def test_approval_required_page(session, enroll_client, scene):
    scene.org.settings.approval_required = True
    issued = scene.invite(session, EMAIL)
    session.commit()
    page = enroll_client.get(f"/enroll/{issued.token}", headers=as_user()).text
    done = enroll_client.post(
        f"/enroll/{issued.token}", data={"name": "N", "form_key": form_key(page)}, headers=as_user()
    )
    assert "waiting for approval" in done.text and "PENDING" in done.text


def test_wrong_account_changes_nothing(session, enroll_client, issued):
    page = enroll_client.get(f"/enroll/{issued.token}", headers=as_user("other@example.com"))
    assert 'id="state-wrong-account"' in page.text and "<form" not in page.text
    posted = enroll_client.post(
        f"/enroll/{issued.token}",
        data={"name": "Mallory", "form_key": "0" * 64},
        headers=as_user("other@example.com"),
    )
    assert posted.status_code == 403 and kind(posted) == "wrong_account"
    nothing_changed(session, issued)


def test_a_revoked_persons_accept_is_refused_and_the_refusal_audited(
    session, enroll_client, issued, scene
):
    """The invited email became a REVOKED person (a leaver): the accept is a 409 that changes
    nothing but leaves one audit event on that person, saying who tried, which invitation, and
    why (models.actions.invitations.accept_invitation)."""
    leaver = f.make_user(session, scene.org, email=EMAIL, name="Old Name")
    leaver_id = leaver.id
    lifecycle.revoke(session, user=leaver, actor=f.SETUP)
    session.commit()
    seen = set(session.scalars(select(AuditEvent.id)))
    session.rollback()  # SQLite: let the app take the write lock
    page = enroll_client.get(f"/enroll/{issued.token}", headers=as_user()).text
    posted = enroll_client.post(
        f"/enroll/{issued.token}",
        data={"name": "New Name", "form_key": form_key(page)},
        headers=as_user("New.Person@example.com"),
    )
    assert posted.status_code == 409 and kind(posted) == "conflict", posted.text
    session.expire_all()
    assert session.get(Invitation, issued.invitation.id).status is InvitationStatus.PENDING
    person = session.get_one(User, leaver_id)
    assert (person.status, person.name) == (UserStatus.REVOKED, "Old Name")
    new = [e for e in session.scalars(select(AuditEvent)) if e.id not in seen]
    assert [(e.action, e.target_type, e.target_id) for e in new] == [
        ("user.invitation_accept_refused", "user", str(leaver_id))
    ]
    assert (new[0].source.value, new[0].actor) == ("invitation", "invitee New.Person@example.com")
    assert new[0].after == {
        "invitation_id": str(issued.invitation.id),
        "email": "New.Person@example.com",
        "user_status": "REVOKED",
        "reason": "account_exists",
    }


def test_post_without_identity_or_with_a_forged_form_key(session, enroll_client, issued):
    anonymous = enroll_client.post(f"/enroll/{issued.token}", data={"name": "N"})
    assert anonymous.status_code == 401 and 'id="state-sign-in"' in anonymous.text
    forged = enroll_client.post(
        f"/enroll/{issued.token}", data={"name": "N", "form_key": "0" * 64}, headers=as_user()
    )
    assert forged.status_code == 400 and kind(forged) == "invalid"
    not_ascii = enroll_client.post(
        f"/enroll/{issued.token}", data={"name": "N", "form_key": "é" * 64}, headers=as_user()
    )
    assert not_ascii.status_code == 400 and kind(not_ascii) == "invalid"
    nothing_changed(session, issued)


def test_empty_name_keeps_the_form_with_a_message(session, enroll_client, issued):
    page = enroll_client.get(f"/enroll/{issued.token}", headers=as_user()).text
    response = enroll_client.post(
        f"/enroll/{issued.token}",
        data={"name": "   ", "form_key": form_key(page)},
        headers=as_user(),
    )
    assert response.status_code == 400 and 'id="name-error"' in response.text
    nothing_changed(session, issued)


@pytest.mark.parametrize(
    ("token", "status", "page"),
    [
        *((token, 404, "unknown") for token in ("garbage", "inv_" + "A" * 43, "inv_" + "%21" * 43)),
        ("x" * 3000, 404, "unknown"),
        ("..%2f..%2fetc", 404, "unknown"),
        # A NUL in the path is refused before any lookup (the input guard, every route alike).
        ("inv_%00%ff", 400, "invalid"),
    ],
)
def test_unknown_and_malformed_tokens(session, enroll_client, issued, token, status, page):
    for response in (
        enroll_client.get(f"/enroll/{token}", headers=as_user()),
        enroll_client.post(f"/enroll/{token}", data={"name": "N"}, headers=as_user()),
    ):
        assert response.status_code == status and kind(response) == page
        assert "What to do next" in response.text and "Traceback" not in response.text
    nothing_changed(session, issued)


def test_tampered_token(session, enroll_client, issued):
    tampered = issued.token[:-2] + ("AA" if issued.token[-2:] != "AA" else "BB")
    response = enroll_client.get(f"/enroll/{tampered}", headers=as_user())
    assert response.status_code == 404 and kind(response) == "unknown"


def test_expired_revoked_pages_say_what_to_do(session, enroll_client, scene, issued):
    issued.invitation.expires_at = utcnow() - timedelta(minutes=1)
    session.commit()
    expired = enroll_client.get(f"/enroll/{issued.token}", headers=as_user())
    assert expired.status_code == 410 and kind(expired) == "expired"
    assert "resend" in expired.text and EMAIL in expired.text
    other = scene.invite(session, "r@example.com")
    inv.revoke(
        session,
        viewer=scene.admin_viewer,
        invitation_id=other.invitation.id,
        actor=scene.actor(scene.admin_viewer),
    )
    session.commit()
    revoked = enroll_client.post(
        f"/enroll/{other.token}", data={"name": "N"}, headers=as_user("r@example.com")
    )
    assert revoked.status_code == 410 and kind(revoked) == "revoked"
    nothing_changed(session, issued, InvitationStatus.PENDING)


def test_resend_kills_the_old_page(session, enroll_client, scene, issued):
    scene.org.settings.resend_cooldown_seconds = 0
    again = inv.resend(
        session,
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
        secret_key=scene.secret_key,
    )
    session.commit()
    assert enroll_client.get(f"/enroll/{issued.token}").status_code == 404
    assert enroll_client.get(f"/enroll/{again.token}").status_code == 200


def test_oversized_non_utf8_and_odd_forms_are_refused(session, enroll_client, issued):
    url = f"/enroll/{issued.token}"
    page = enroll_client.get(url, headers=as_user()).text
    key = form_key(page)
    big = enroll_client.post(url, data={"name": "N" * 20000, "form_key": key}, headers=as_user())
    assert big.status_code == 413 and kind(big) == "too_large"
    form_headers = {**as_user(), "Content-Type": "application/x-www-form-urlencoded"}
    raw = enroll_client.post(
        url, data=b"name=\xff\xfe&form_key=" + key.encode(), headers=form_headers
    )
    assert raw.status_code == 400 and "UTF-8" in raw.text
    encoded = enroll_client.post(url, data=f"name=%ff%fe&form_key={key}", headers=form_headers)
    assert encoded.status_code == 400 and "UTF-8" in encoded.text
    twice = enroll_client.post(url, data=f"name=a&name=b&form_key={key}", headers=form_headers)
    assert twice.status_code == 400
    as_json = enroll_client.post(url, json={"name": "N"}, headers=as_user())
    assert as_json.status_code == 400 and kind(as_json) == "invalid"
    huge = enroll_client.post(url, data=b"x" * 2_000_000, headers=form_headers)
    assert huge.status_code == 413
    nothing_changed(session, issued)


def test_method_not_allowed_is_an_html_page(enroll_client, issued):
    response = enroll_client.delete(f"/enroll/{issued.token}")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert enroll_client.get("/enroll/").status_code == 404


def test_a_query_parameter_given_twice_is_an_html_400(enroll_client, issued):
    response = enroll_client.get(f"/enroll/{issued.token}?x=1&x=2", headers=as_user())
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Traceback" not in response.text


def padded_form(key: str, size: int) -> bytes:
    """A valid enrollment form of exactly `size` bytes (an unread field pads it)."""
    start = f"name=Nina+New&form_key={key}&pad=".encode()
    return start + b"p" * (size - len(start))


@pytest.mark.parametrize("size", [20_000, ENDLESS], ids=["20 kB", "endless"])
def test_a_chunked_form_over_the_limit_is_refused_once_a_byte_past_it_is_read(
    session, enroll_client, issued, enroll_settings, size
):
    """A form with no Content-Length (chunked) was read whole before its size was compared
    with ENROLLMENT_MAX_FORM_BYTES: up to MAX_BODY_BYTES (1 MiB) of an endless one, and the
    whole of a larger one that ended. The reader stops one byte past the limit."""
    url = f"/enroll/{issued.token}"
    key = form_key(enroll_client.get(url, headers=as_user()).text)
    limit = enroll_settings.enrollment_max_form_bytes
    body = StreamedBody(padded_form(key, 200), size)
    refused = enroll_client.post(url, **chunked(body, FORM, **as_user()))
    assert refused.status_code == 413 and kind(refused) == "too_large", refused.text[:300]
    assert body.taken <= limit + 1, body.taken
    nothing_changed(session, issued)


@pytest.mark.parametrize("framing", ["chunked", "Content-Length"])
def test_a_form_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(
    session, enroll_client, issued, enroll_settings, framing
):
    url = f"/enroll/{issued.token}"
    key = form_key(enroll_client.get(url, headers=as_user()).text)
    limit = enroll_settings.enrollment_max_form_bytes

    def post(size: int):
        if framing == "chunked":
            body = StreamedBody(padded_form(key, size), size)
            return enroll_client.post(url, **chunked(body, FORM, **as_user()))
        headers = {**as_user(), "Content-Type": FORM}
        return enroll_client.post(url, data=padded_form(key, size), headers=headers)

    over = post(limit + 1)
    assert over.status_code == 413 and kind(over) == "too_large", over.text[:300]
    nothing_changed(session, issued)
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    accepted = post(limit)
    assert accepted.status_code == 200, accepted.text[:300]
    assert session.scalar(select(func.count(User.id)).where(User.email_key == EMAIL)) == 1
