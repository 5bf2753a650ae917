"""Signing in to the console: a token exchanged once for a session; CSRF; who may enter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connectors.outbound import UrlPolicy
from models.access import Viewer
from models.actions import console_sessions, oidc_providers, provider_accounts
from models.actions.sign_in_audit import SignInRefused
from models.base import Base
from models.entities import ApiToken, AuditEvent, OidcSubject, User
from models.enums import Role, TokenScope, UserStatus
from tests.console.conftest import csrf_of, sign_in
from tests.support import factories as f
from tests.support.parallel import in_parallel
from tests.support.state import change_checker

BUT_THE_AUDIT_TRAIL = [name for name in Base.metadata.tables if name != "audit_events"]


def sign_in_events(s, action):
    """(actor, outcome or method) of each console sign-in event with this action."""
    events = s.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == action)
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    )
    return [(e.actor, e.after.get("outcome") or e.after["method"]) for e in events]


def test_a_page_without_a_session_sends_to_sign_in(client):
    answer = client.get("/console")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/console/sign-in")


def test_admin_token_is_exchanged_for_a_console_session(client, org, sessions):
    form = client.get("/console/sign-in")
    assert form.status_code == 200
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    assert form.headers["X-Frame-Options"] == "DENY"
    answer = client.post(
        "/console/sign-in",
        data={"token": org.admin_token, "csrf": csrf_of(form.get_data(as_text=True))},
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/console")
    cookie = answer.headers["Set-Cookie"]
    assert "odock_console=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie and "Max-Age=28800" in cookie
    assert org.admin_token not in cookie  # the token is exchanged, not kept
    page = client.get("/console")
    assert page.status_code == 200
    assert "ada@acme.example" in page.get_data(as_text=True)
    with sessions() as s:
        started = s.scalar(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE))
        assert started.user_id == org.admin.id and started.expires_at is not None
        event = s.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "token.created", AuditEvent.target_id == str(started.id)
            )
        )
        assert event.actor == "ada@acme.example" and event.actor_user_id == org.admin.id
        signed_in = s.scalar(select(AuditEvent).where(AuditEvent.action == "console.signed_in"))
        assert (signed_in.organisation_id, signed_in.actor_user_id) == (org.org.id, org.admin.id)
        assert signed_in.after == {
            "place": "console",
            "method": "admin_token",
            "email": "ada@acme.example",
        }


def test_session_cookie_is_secure_when_served_over_https(client_with, org):
    client = client_with(public_base_url="https://sync.example.com")
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"token": org.admin_token, "csrf": csrf_of(form.get_data(as_text=True))},
    )
    assert "Secure" in answer.headers["Set-Cookie"]


def test_sign_out_ends_the_session_for_good(client, org, sessions):
    sign_in(client, org.admin_token)
    stolen = client.get_cookie("odock_console", path="/console").value
    page = client.get("/console").get_data(as_text=True)
    out = client.post("/console/sign-out", data={"csrf": csrf_of(page)})
    assert out.status_code == 303 and "signed_out" in out.headers["Location"]
    client.set_cookie("odock_console", stolen, path="/console")  # replayed after sign-out
    assert client.get("/console").status_code == 303
    with sessions() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "token.revoked"))


def test_wrong_token_user_role_or_stale_form_is_refused_on_the_page(client, org, sessions):
    form = client.get("/console/sign-in").get_data(as_text=True)
    unchanged = change_checker(sessions, BUT_THE_AUDIT_TRAIL)
    unchanged()
    for token, says in [
        ("odk_admin_not-a-token", "not a live admin token"),
        (org.member_token, "for Organisation Admins and managers"),
    ]:
        answer = client.post("/console/sign-in", data={"token": token, "csrf": csrf_of(form)})
        assert answer.status_code == 401
        assert says in answer.get_data(as_text=True)
    stale = client.post("/console/sign-in", data={"token": org.admin_token, "csrf": "forged"})
    assert stale.status_code == 200 and "expired" in stale.get_data(as_text=True)
    unchanged()  # only the refusals were recorded, with who and why, never the token sent
    with sessions() as s:
        assert sign_in_events(s, "console.sign_in_refused") == [
            ("anonymous", "bad_token"),
            ("mia@acme.example", "not_console_role"),
        ]
        refused = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "console.sign_in_refused")
        ).all()
        assert [e.organisation_id for e in refused] == [None, org.org.id]
        assert all(org.member_token not in str(e.after) for e in refused)


def test_the_token_exchange_is_refused_where_the_organisation_has_oidc(
    client, org, session, sessions, settings
):
    oidc_providers.configure(
        session,
        organisation=org.org,
        secret_key=settings.secret_key,
        actor=f.SETUP,
        policy=UrlPolicy(),
        issuer="https://idp.acme.example",
        client_id="odock",
        client_secret="s3cret-s3cret",
        display_name="Acme SSO",
    )
    session.commit()
    form = client.get("/console/sign-in").get_data(as_text=True)
    answer = client.post("/console/sign-in", data={"token": org.admin_token, "csrf": csrf_of(form)})
    assert answer.status_code == 401
    assert "signs in to the console with Acme SSO" in answer.get_data(as_text=True)
    assert client.get("/console").status_code == 303
    with sessions() as s:
        assert s.scalar(select(ApiToken).where(ApiToken.scope == TokenScope.CONSOLE)) is None
        assert sign_in_events(s, "console.sign_in_refused") == [
            ("ada@acme.example", "oidc_required")
        ]


def test_a_session_ends_when_its_person_is_revoked(client, org, session):
    sign_in(client, org.manager_token)
    assert client.get("/console").status_code == 200
    session.get(type(org.manager), org.manager.id).status = UserStatus.REVOKED
    session.commit()
    assert client.get("/console").status_code == 303


def test_a_post_without_the_csrf_token_changes_nothing(client, org, unchanged):
    sign_in(client, org.admin_token)
    unchanged()
    answer = client.post(f"/console/people/{org.member.id}/revoke", data={"reason": "x"})
    assert answer.status_code == 403
    assert "reload the page" in answer.get_data(as_text=True)
    unchanged()


def test_a_non_ascii_csrf_token_is_refused_like_a_wrong_one(client, org, unchanged):
    client.get("/console/sign-in")
    signed_out = client.post("/console/sign-in", data={"token": org.admin_token, "csrf": "é"})
    assert signed_out.status_code == 200 and "had expired" in signed_out.get_data(as_text=True)
    sign_in(client, org.admin_token)
    unchanged()
    answer = client.post(f"/console/people/{org.member.id}/revoke", data={"csrf": "é"})
    assert answer.status_code == 403
    unchanged()


def test_console_scope_tokens_are_not_made_through_the_api(client, org):
    answer = client.post(
        "/api/v1/tokens",
        json={"scope": "console"},
        headers={"Authorization": f"Bearer {org.admin_token}"},
    )
    assert answer.status_code == 400 and "signing in at /console" in answer.json["detail"]


@pytest.mark.parametrize("lookalike", ["\u212aim@acme.example", "kim@acme.example\u200b"])
def test_a_verified_lookalike_of_an_admins_email_is_not_that_admin(session, org, lookalike):
    """A provider may verify "\u212aim@…" (the Kelvin sign); str.lower() makes it the admin's."""
    kim = f.make_user(session, org.org, role=Role.ORG_ADMIN, email="kim@acme.example")
    session.commit()
    signed_in = console_sessions.sign_in_verified_email(
        session, organisation_id=org.org.id, email="KIM@acme.example", lifetime=timedelta(hours=1)
    )
    assert signed_in.viewer.user_id == kim.id
    with pytest.raises(SignInRefused) as refused:
        console_sessions.sign_in_verified_email(
            session, organisation_id=org.org.id, email=lookalike, lifetime=timedelta(hours=1)
        )
    assert refused.value.outcome == "not_a_person"


def test_another_provider_account_with_the_admins_verified_email_is_not_the_admin(
    session, sessions, org, settings
):
    """OpenID Connect Core 1.0 section 5.7: only iss and sub together say who signed in. The
    account an admin first signs in with is theirs; a second account showing the same verified
    email is refused until their binding is forgotten."""
    issuer = "https://idp.example.com"
    first = provider_accounts.ProviderAccount(issuer=issuer, subject="00u-ada")
    second = provider_accounts.ProviderAccount(issuer=issuer, subject="00u-impostor")

    def sign_in_as(account):
        return _admin_signs_in_with(session, org, account)

    assert sign_in_as(first).viewer.user_id == org.admin.id
    assert sign_in_as(first).viewer.user_id == org.admin.id  # the same account, again
    with pytest.raises(SignInRefused) as refused:
        sign_in_as(second)
    assert refused.value.outcome == "other_account"
    session.rollback()
    other_issuer = provider_accounts.ProviderAccount(issuer="https://other.example", subject="x")
    assert sign_in_as(other_issuer).viewer.user_id == org.admin.id  # bound per issuer

    # Setting a provider at that issuer keeps what was bound there, and forgets the rest.
    set_provider(session, org, settings, issuer=issuer, client_id="odock")
    session.commit()
    with pytest.raises(SignInRefused):
        sign_in_as(second)
    session.rollback()
    assert sign_in_as(first).viewer.user_id == org.admin.id
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.startswith("sign_in."))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        ).all()
    assert [(e.action, (e.after or {}).get("subject")) for e in events] == [
        ("sign_in.oidc_account_bound", "00u-ada"),
        ("sign_in.oidc_account_bound", "x"),
        ("sign_in.oidc_account_forgotten", None),
        ("sign_in.oidc_configured", None),
    ]
    assert events[2].before == {"accounts": [{"issuer": "https://other.example", "subject": "x"}]}
    assert events[3].after["accounts_forgotten"] == 1


def set_provider(session, org, settings, *, issuer: str, client_id: str, **more) -> None:
    """An admin sets the organisation's provider (again)."""
    oidc_providers.configure(
        session,
        organisation=org.org,
        secret_key=settings.secret_key,
        actor=console_sessions.console_actor(Viewer.for_user(org.admin)),
        policy=UrlPolicy(),
        issuer=issuer,
        client_id=client_id,
        client_secret=more.pop("client_secret", "client-secret-0123456789abcdef"),
        **more,
    )


def test_saving_the_provider_again_forgets_bound_accounts_only_when_their_subjects_change(
    session, sessions, org, settings
):
    """A new secret or display name changes nobody's account at the provider: everyone stays
    bound. Another client at the issuer (which may say other subs: pairwise identifiers) or
    another issuer forgets them, each person's forgetting audited."""
    issuer = "https://idp.example.com"

    def sign_in(person, subject: str, at: str = issuer):
        started = console_sessions.sign_in_verified_email(
            session,
            organisation_id=org.org.id,
            email=person.email,
            lifetime=timedelta(hours=1),
            account=provider_accounts.ProviderAccount(at, subject),
        )
        session.commit()
        return started

    def refused(person, subject: str) -> str:
        with pytest.raises(SignInRefused) as refusal:
            sign_in(person, subject)
        session.rollback()
        return refusal.value.outcome

    set_provider(session, org, settings, issuer=issuer, client_id="odock")
    sign_in(org.admin, "00u-ada")
    sign_in(org.manager, "00u-max")
    set_provider(
        session,
        org,
        settings,
        issuer=issuer,
        client_id="odock",
        client_secret="a-rotated-secret-0123456789",
        display_name="Acme SSO",
    )
    session.commit()
    assert refused(org.admin, "00u-impostor") == "other_account"
    assert refused(org.manager, "00u-impostor") == "other_account"

    set_provider(session, org, settings, issuer=issuer, client_id="odock-2")
    session.commit()
    sign_in(org.admin, "00u-ada-2")  # bound afresh: the new client's subject
    set_provider(session, org, settings, issuer="https://new-idp.example.com", client_id="x")
    session.commit()
    sign_in(org.admin, "00u-ada-3", at="https://new-idp.example.com")

    with sessions() as s:
        configured = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "sign_in.oidc_configured")
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        ).all()
        forgotten = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "sign_in.oidc_account_forgotten")
            .order_by(AuditEvent.occurred_at, AuditEvent.target_id)
        ).all()
    assert [e.after.get("accounts_forgotten") for e in configured] == [None, None, 2, 1]
    assert sorted(
        (e.target_id, e.before["accounts"][0]["subject"], e.after["because"]) for e in forgotten
    ) == sorted(
        [
            (str(org.admin.id), "00u-ada", "the provider's client changed"),
            (str(org.manager.id), "00u-max", "the provider's client changed"),
            (str(org.admin.id), "00u-ada-2", "the provider's issuer changed"),
        ]
    )


def test_a_person_whose_provider_account_was_replaced_binds_the_new_one_once_forgotten(
    session, sessions, org
):
    """Forgetting one person's bound account (their account at the provider was replaced)
    lets their next account bind, and leaves everyone else's binding as it was."""
    issuer = "https://idp.example.com"
    old, new = (provider_accounts.ProviderAccount(issuer, s) for s in ("00u-old", "00u-new"))

    def sign_in_as(account):
        return _admin_signs_in_with(session, org, account)

    sign_in_as(old)
    with pytest.raises(SignInRefused):
        sign_in_as(new)
    session.rollback()

    forgotten = provider_accounts.forget(
        session, organisation_id=org.org.id, email=org.admin.email, actor=f.SETUP
    )
    session.commit()

    assert forgotten == 1
    assert sign_in_as(new).viewer.user_id == org.admin.id
    with pytest.raises(SignInRefused):
        sign_in_as(old)  # the replaced account is not them any more
    session.rollback()
    with sessions() as s:
        (event,) = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "sign_in.oidc_account_forgotten")
        ).all()
    assert event.target_id == str(org.admin.id)
    assert event.before == {"accounts": [{"issuer": issuer, "subject": "00u-old"}]}


def test_forgetting_the_account_of_nobody_here_is_not_found(session, org):
    from models.errors import NotFound

    with pytest.raises(NotFound):
        provider_accounts.forget(
            session, organisation_id=org.org.id, email="nobody@example.com", actor=f.SETUP
        )


def _admin_signs_in_with(session, org, account: provider_accounts.ProviderAccount):
    """The organisation's admin signs in to the console with this provider account."""
    started = console_sessions.sign_in_verified_email(
        session,
        organisation_id=org.org.id,
        email=org.admin.email,
        lifetime=timedelta(hours=1),
        account=account,
    )
    session.commit()
    return started


def test_two_first_sign_ins_with_different_accounts_at_once_bind_one_of_them(sessions, org):
    """Two accounts of the provider showing the admin's email sign in for the first time at the
    same moment: one is bound and signed in, the other is refused as another account."""
    issuer = "https://idp.example.com"
    accounts = [provider_accounts.ProviderAccount(issuer, s) for s in ("00u-one", "00u-two")]

    def first_sign_in(account: provider_accounts.ProviderAccount) -> Callable[[], str]:
        def attempt() -> str:
            with sessions() as own:
                try:
                    console_sessions.sign_in_verified_email(
                        own,
                        organisation_id=org.org.id,
                        email=org.admin.email,
                        lifetime=timedelta(hours=1),
                        account=account,
                    )
                except SignInRefused as refused:
                    own.rollback()
                    return refused.outcome
                own.commit()
                return account.subject

        return attempt

    outcomes = in_parallel([first_sign_in(account) for account in accounts])

    (winner,) = [outcome for outcome in outcomes if outcome.startswith("00u-")]
    assert sorted(outcomes) == sorted([winner, "other_account"])
    with sessions() as fresh:
        bound = [(b.user_id, b.subject) for b in fresh.scalars(select(OidcSubject))]
    assert bound == [(org.admin.id, winner)]


def test_two_forgettings_of_one_account_at_once_audit_it_once(session, sessions, org):
    _admin_signs_in_with(session, org, provider_accounts.ProviderAccount("https://idp.x", "00u"))

    def forget() -> int:
        with sessions() as own:
            forgotten = provider_accounts.forget(
                own, organisation_id=org.org.id, email=org.admin.email, actor=f.SETUP
            )
            own.commit()
            return forgotten

    assert sorted(in_parallel([forget, forget])) == [0, 1]
    with sessions() as fresh:
        forgettings = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "sign_in.oidc_account_forgotten")
        ).all()
    assert len(forgettings) == 1


def test_a_bind_that_fails_for_another_reason_than_a_parallel_bind_is_raised_once(session, org):
    """A person deleted while their first sign-in binds them: the insert fails on its foreign
    key, not on a parallel bind, and checking again would find nothing bound and bind again
    (it recursed until Python's limit, a 500)."""
    ghost = User(
        id=uuid.uuid4(), organisation_id=org.org.id, email="ghost@example.com", role=Role.USER
    )
    account = provider_accounts.ProviderAccount(issuer="https://idp.example.com", subject="00u-g")
    with pytest.raises(IntegrityError):
        provider_accounts.check(session, user=ghost, account=account, actor=f.SETUP)
    session.rollback()


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "fields",
    [
        b"reason=left&reason=stayed",  # read as its first value; a proxy may read the last
        b"reason=%FF%FE",  # not UTF-8: was kept as U+FFFD
        b"reason=caf\xe9",  # a raw byte that is not UTF-8
        b"reason=a%00b",
        b"reason=left&%FF=1",
    ],
)
def test_a_form_field_twice_or_not_utf8_is_refused_and_changes_nothing(
    client, org, unchanged, fields
):
    """The console read its forms with request.form: a field sent twice was read as its first
    value and bytes that are not UTF-8 were replaced, and the action went ahead (the
    revocation made, its reason kept as U+FFFD). They are refused as the enrollment form
    refuses them (webhooks.body.form_fields)."""
    sign_in(client, org.admin_token)
    csrf = csrf_of(client.get(f"/console/people/{org.member.id}").get_data(as_text=True))
    unchanged()
    answer = client.post(
        f"/console/people/{org.member.id}/revoke",
        data=fields + b"&csrf=" + csrf.encode(),
        content_type=FORM,
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "text/html"
    unchanged()


def test_a_csrf_token_or_admin_token_sent_twice_is_refused(client, org, unchanged):
    sign_in(client, org.admin_token)
    csrf = csrf_of(client.get(f"/console/people/{org.member.id}").get_data(as_text=True))
    unchanged()
    answer = client.post(
        f"/console/people/{org.member.id}/revoke",
        data=f"reason=left&csrf={csrf}&csrf={csrf}",
        content_type=FORM,
    )
    assert answer.status_code == 400
    unchanged()
    fresh = client.application.test_client()
    form_csrf = csrf_of(fresh.get("/console/sign-in").get_data(as_text=True))
    signed = fresh.post(
        "/console/sign-in",
        data=f"token={org.manager_token}&token=other&csrf={form_csrf}",
        content_type=FORM,
    )
    assert signed.status_code == 400 and signed.mimetype == "text/html"
