"""The sign-ins kept between the redirect to the provider and its callback: used once, in the
browser that started them, within their lifetime."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.oidc import AuthorizationRequest, IdTokenClaims
from models.actions import oidc_sign_ins
from models.actions.invitations import is_invited_email
from models.actions.oidc_sign_ins import SignInRefused
from models.base import utcnow
from models.enums import SignInPlace

REQUEST = AuthorizationRequest(
    url="https://idp.example.com/auth?…", state="s" * 43, nonce="n" * 43, code_verifier="v" * 43
)


@pytest.fixture
def started(session, scene, settings):
    issued = scene.invite(session, email="eve@example.com")
    oidc_sign_ins.start(
        session,
        place=SignInPlace.ENROLLMENT,
        organisation_id=issued.invitation.organisation_id,
        invitation=issued.invitation,
        link_token=issued.token,
        request=REQUEST,
        issuer="https://idp.example.com",
        callback_id="c" * 32,
        browser="browser-1",
        secret_key=settings.secret_key,
        now=utcnow(),
    )
    session.commit()
    return issued


def claim(
    session,
    settings,
    *,
    state=REQUEST.state,
    browser="browser-1",
    later=timedelta(),
    place=SignInPlace.ENROLLMENT,
):
    return oidc_sign_ins.claim(
        session,
        place=place,
        state=state,
        browser=browser,
        secret_key=settings.secret_key,
        now=utcnow() + later,
    )


def test_a_sign_in_is_claimed_once_with_what_the_callback_needs(session, settings, started):
    claimed = claim(session, settings)
    assert claimed == oidc_sign_ins.Claimed(
        organisation_id=started.invitation.organisation_id,
        invitation_id=started.invitation.id,
        link_token=started.token,
        nonce=REQUEST.nonce,
        code_verifier=REQUEST.code_verifier,
        issuer="https://idp.example.com",
        callback_id="c" * 32,
    )
    session.commit()
    with pytest.raises(SignInRefused, match="already used"):
        claim(session, settings)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"state": ""}, "state is unknown"),
        ({"state": "t" * 43}, "state is unknown"),
        ({"browser": "browser-2"}, "another browser"),
        ({"browser": ""}, "another browser"),
        ({"later": oidc_sign_ins.LIFETIME + timedelta(seconds=1)}, "too long"),
        ({"place": SignInPlace.CONSOLE}, "state is unknown"),  # started on an invitation
    ],
)
def test_a_refused_claim_leaves_the_sign_in_usable(session, settings, started, changes, reason):
    with pytest.raises(SignInRefused, match=reason):
        claim(session, settings, **changes)
    session.rollback()
    assert claim(session, settings).link_token == started.token


def test_a_refusal_says_why_and_where_for_the_audit_trail(session, settings, started):
    claim(session, settings)
    session.commit()
    with pytest.raises(SignInRefused) as replayed:
        claim(session, settings)
    assert replayed.value.outcome == "state_used"
    assert replayed.value.organisation_id == started.invitation.organisation_id
    with pytest.raises(SignInRefused) as unknown:
        claim(session, settings, state="t" * 43)
    assert (unknown.value.outcome, unknown.value.organisation_id) == ("state_unknown", None)


def test_only_a_verified_email_counts():
    verified = IdTokenClaims(subject="1", email="eve@example.com", email_verified=True)
    assert oidc_sign_ins.verified_email(verified) == "eve@example.com"
    for claims in (
        IdTokenClaims(subject="1", email="eve@example.com", email_verified=False),
        IdTokenClaims(subject="1", email=None, email_verified=True),
    ):
        with pytest.raises(SignInRefused):
            oidc_sign_ins.verified_email(claims)


@pytest.mark.parametrize(
    ("signed_in", "invited"),
    [
        ("Kim@Example.COM", True),
        (" kim@example.com", True),
        ("\u212aim@example.com", False),  # the Kelvin sign, which str.lower() makes a "k"
        ("\u043aim@example.com", False),  # Cyrillic ka
        ("\uff4bim@example.com", False),  # fullwidth k
        ("kim@example.com\u200b", False),  # a zero-width space
    ],
)
def test_only_the_invited_email_in_another_ascii_case_is_the_invited_one(
    session, scene, signed_in, invited
):
    invitation = scene.invite(session, email="kim@example.com").invitation
    assert is_invited_email(invitation, signed_in) is invited


@pytest.mark.parametrize(
    ("invited", "signed_in"),
    [
        ("Ann@Example.com", "ann@example.com"),
        ("ann@b\u00fccher.example", "Ann@xn--bcher-kva.example"),  # IDNA: one domain
        ("ann@xn--bcher-kva.example", "ann@B\u00dcCHER.example"),
    ],
)
def test_the_invited_address_with_its_domain_spelled_another_way_is_the_invited_one(
    session, scene, invited, signed_in
):
    """The provider's verified address and the invited one are one address when they differ
    only in the case of ASCII letters or in the domain's IDNA form (A-label, U-label, case);
    before, an A-label or a non-ASCII capital in the domain was 'a different email'."""
    invitation = scene.invite(session, email=invited).invitation
    assert is_invited_email(invitation, signed_in)
