"""OpenID Connect sign-in for the enrollment pages and the console: each organisation's
provider, and the sign-ins under way (the state, nonce and PKCE verifier kept between
redirect and callback)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column
from models.enums import SignInPlace


class OidcProvider(Timestamped, Base):
    """The organisation's OpenID Connect provider; the client secret is kept encrypted.

    `callback_id` names the provider's own redirect URIs (/enroll/oidc/callback/<id>,
    /console/oidc/callback/<id>), so that an answer tells which provider it is for (RFC 9700
    section 4.4.2); `shared_callback` keeps a provider registered before those existed on the
    one callback every organisation shares."""

    __tablename__ = "oidc_providers"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(2000))
    client_id: Mapped[str] = mapped_column(String(500))
    sealed_client_secret: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(100))
    callback_id: Mapped[str] = mapped_column(String(32), unique=True)
    shared_callback: Mapped[bool] = mapped_column(default=False)


class OidcSignIn(Base):
    """One sign-in sent to the provider; its callback may use it once, within its lifetime.

    Only the state's hash is kept (it is the lookup key); the nonce, the PKCE verifier and the
    invitation link are sealed, since together they would let someone finish the sign-in.
    A console sign-in has no invitation; its callback signs in to `organisation_id`.
    """

    __tablename__ = "oidc_sign_ins"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    place: Mapped[SignInPlace] = enum_column(SignInPlace)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), index=True, default=None
    )
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class OidcSubject(Base):
    """Which account at the organisation's provider (its `sub`) a person signs in to the
    console with: bound at their first sign-in there, so that another account of the provider
    showing the same verified email is not them (OpenID Connect Core 1.0 section 5.7: only
    iss and sub together identify someone). Forgotten per person (forget-account) or when the
    provider is set to another issuer or client (models/actions/provider_accounts.py)."""

    __tablename__ = "oidc_subjects"
    __table_args__ = (UniqueConstraint("user_id", "issuer"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(2000))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
