"""Which account at the organisation's OpenID Connect provider is a person (table
oidc_subjects): the one they first signed in with, at enrollment or at the console, is bound
to them; another account of that provider showing the same verified email is not them
(OpenID Connect Core 1.0 section 5.7: only iss and sub together identify someone), until an
operator forgets the binding (their account there was replaced)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import audit
from models.actions.sign_in_audit import SignInRefused
from models.actions.users import find_user_by_email
from models.actor import Actor
from models.base import utcnow
from models.entities import OidcSubject, User
from models.errors import NotFound


@dataclass(frozen=True)
class ProviderAccount:
    """Who signed in at an OpenID Connect provider: its issuer and the subject it said."""

    issuer: str
    subject: str


def check(session: Session, *, user: User, account: ProviderAccount, actor: Actor) -> None:
    """The provider account signing in as `user` is theirs: bound now if they have none at this
    issuer, refused (`other_account`) if they have another one there."""
    known = _bound(session, user, account.issuer)
    if known is None:
        _bind(session, user, account, actor)
    elif known.subject != account.subject:
        raise SignInRefused(
            f"{user.email} signs in with another account of this provider; if that account "
            "was replaced, an administrator lets them bind the new one "
            "(odock-sync sign-in forget-account)",
            outcome="other_account",
            organisation_id=user.organisation_id,
            email=user.email,
            user_id=user.id,
        )


def _bound(session: Session, user: User, issuer: str) -> OidcSubject | None:
    return session.scalar(
        select(OidcSubject).where(OidcSubject.user_id == user.id, OidcSubject.issuer == issuer)
    )


def _bind(session: Session, user: User, account: ProviderAccount, actor: Actor) -> None:
    """A parallel first sign-in with another account loses on the unique (user, issuer) and
    is refused like any later one."""
    try:
        with session.begin_nested():
            session.add(
                OidcSubject(
                    organisation_id=user.organisation_id,
                    user_id=user.id,
                    issuer=account.issuer,
                    subject=account.subject,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        if _bound(session, user, account.issuer) is None:
            raise  # not a parallel bind (the person deleted meanwhile): checking again loops
        check(session, user=user, account=account, actor=actor)
        return
    audit.record(
        session,
        actor=actor,
        organisation_id=user.organisation_id,
        action="sign_in.oidc_account_bound",
        target_type="user",
        target_id=user.id,
        after={"issuer": account.issuer, "subject": account.subject},
    )


def forget(session: Session, *, organisation_id: uuid.UUID, email: str, actor: Actor) -> int:
    """The provider accounts bound to this person are forgotten (their account at the provider
    was replaced): the next one they sign in with is bound to them. How many were; each
    forgetting is audited, nothing is when none was bound."""
    user = find_user_by_email(session, organisation_id, email)
    if user is None:
        raise NotFound(f"no person with email {email} in this organisation", field="email")
    return _forget_where(
        session, OidcSubject.user_id == user.id, organisation_id=organisation_id, actor=actor
    )


def forget_on_provider_change(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    issuer: str,
    client_changed: bool,
    actor: Actor,
) -> int:
    """The organisation's provider was set: the accounts bound where its subjects no longer
    come from are forgotten, those at another issuer, or every one when the client at the same
    issuer changed (a provider may say another `sub` to each client: pairwise identifiers,
    Entra ID's per application). Nothing else is: a new secret or name keeps everyone's.
    Each person's forgetting is audited; how many accounts were."""
    which = OidcSubject.organisation_id == organisation_id
    if not client_changed:
        which = which & (OidcSubject.issuer != issuer)
    because = "the provider's client changed" if client_changed else "the provider's issuer changed"
    return _forget_where(
        session, which, organisation_id=organisation_id, actor=actor, because=because
    )


def _forget_where(
    session: Session,
    which: ColumnElement[bool],
    *,
    organisation_id: uuid.UUID,
    actor: Actor,
    because: str | None = None,
) -> int:
    """Forget the bound accounts `which` selects, one audit event per person; how many."""
    # What this statement deleted, not what a read before it saw: two forgettings at once
    # audit each account once.
    gone = session.execute(
        delete(OidcSubject)
        .where(which)
        .returning(OidcSubject.user_id, OidcSubject.issuer, OidcSubject.subject)
    ).all()
    for user_id in sorted({row.user_id for row in gone}):
        accounts = [
            {"issuer": r.issuer, "subject": r.subject} for r in gone if r.user_id == user_id
        ]
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="sign_in.oidc_account_forgotten",
            target_type="user",
            target_id=user_id,
            before={"accounts": sorted(accounts, key=lambda a: (a["issuer"], a["subject"]))},
            after={"accounts": [], **({"because": because} if because else {})},
        )
    return len(gone)
