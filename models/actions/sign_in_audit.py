"""Every sign-in outcome in the audit trail, on the enrollment pages and the console alike:
who (the email claimed, and the person when known), how (OpenID Connect or an admin token),
where, and in which organisation. Never a secret, token, code or state.

A refusal is audited after the refused work is rolled back, so the caller records it with
`refused` and commits; nothing else of the attempt is kept.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.orm import Session

from models import audit
from models.actor import Actor
from models.enums import SignInPlace, Source
from models.errors import Forbidden

UNKNOWN = "anonymous"


class SignInMethod(StrEnum):
    OIDC = "oidc"
    ADMIN_TOKEN = "admin_token"  # noqa: S105 - a method's name, not a secret


class SignInRefused(Forbidden):
    """A sign-in that is not let in; `outcome` says why in one word for the audit trail,
    the message says it to the person. Nothing the attempt started is kept."""

    code = "sign_in_refused"

    def __init__(
        self,
        message: str,
        *,
        outcome: str,
        organisation_id: uuid.UUID | None = None,
        email: str | None = None,
        user_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.organisation_id = organisation_id
        self.email = email
        self.user_id = user_id


def signed_in(
    session: Session,
    *,
    place: SignInPlace,
    method: SignInMethod,
    organisation_id: uuid.UUID,
    email: str,
    user_id: uuid.UUID | None = None,
    invitation_id: uuid.UUID | None = None,
) -> None:
    audit.record(
        session,
        actor=_actor(place, email, user_id),
        organisation_id=organisation_id,
        action=f"{place}.signed_in",
        target_type="invitation" if invitation_id else "user",
        target_id=invitation_id or user_id or UNKNOWN,
        after={"place": str(place), "method": str(method), "email": email},
    )


def refused(
    session: Session,
    refusal: SignInRefused,
    *,
    place: SignInPlace,
    method: SignInMethod,
    organisation_id: uuid.UUID | None = None,
    invitation_id: uuid.UUID | None = None,
) -> None:
    """`organisation_id` and `invitation_id` are what the caller knows of the attempt when the
    refusal itself does not say (a state nobody started belongs to no organisation)."""
    organisation = refusal.organisation_id or organisation_id
    audit.record(
        session,
        actor=_actor(place, refusal.email, refusal.user_id),
        organisation_id=organisation,
        action=f"{place}.sign_in_refused",
        target_type=_target_type(invitation_id, refusal.user_id, organisation),
        target_id=invitation_id or refusal.user_id or organisation or UNKNOWN,
        after={
            "place": str(place),
            "method": str(method),
            "email": refusal.email,
            "outcome": refusal.outcome,
            "reason": refusal.message[:300],
        },
    )


def _actor(place: SignInPlace, email: str | None, user_id: uuid.UUID | None) -> Actor:
    source = Source.INVITATION if place is SignInPlace.ENROLLMENT else Source.ADMIN
    return Actor(source, (email or UNKNOWN)[:255], user_id)


def _target_type(
    invitation_id: uuid.UUID | None, user_id: uuid.UUID | None, organisation: uuid.UUID | None
) -> str:
    if invitation_id:
        return "invitation"
    if user_id:
        return "user"
    return "organisation" if organisation else "sign_in"
