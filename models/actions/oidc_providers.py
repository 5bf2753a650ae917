"""An organisation's OpenID Connect provider for the enrollment pages and the console: set,
clear, describe.

The client secret is kept encrypted (models/encryption.py) and never shown again. Each
provider has redirect URIs of its own (a callback id: RFC 9700 section 4.4.2, the mix-up
defence), new with each issuer; one set before those existed keeps the callback shared by
every organisation until an admin moves it (`shared_callback`).
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.oidc import Client
from connectors.outbound import UrlPolicy
from models import audit, encryption, unique_rows
from models.actions import provider_accounts
from models.actor import Actor
from models.base import utcnow
from models.entities import OidcProvider, Organisation
from models.enums import SignInPlace
from models.errors import InvalidInput, NotFound

PURPOSE = "oidc-client-secret"
CALLBACK_PATHS = {
    SignInPlace.ENROLLMENT: "/enroll/oidc/callback",
    SignInPlace.CONSOLE: "/console/oidc/callback",
}
PRINTABLE = frozenset(chr(code) for code in range(0x21, 0x7F))


def configure(
    session: Session,
    *,
    organisation: Organisation,
    secret_key: str,
    actor: Actor,
    policy: UrlPolicy,
    issuer: str,
    client_id: str,
    client_secret: str,
    display_name: str | None = None,
    shared_callback: bool | None = None,
) -> OidcProvider:
    """Set (or replace) the provider; every value is checked before anything is written.
    `shared_callback` None keeps the provider's callback as it was (its own for a new one)."""
    issuer = _checked_issuer(issuer.strip(), policy)
    client_id = _checked_text(client_id.strip(), "client_id", 500)
    client_secret = _checked_text(client_secret, "client_secret", 1000)
    name = (display_name or "").strip() or urlsplit(issuer).hostname or issuer
    if len(name) > 100 or not name.isprintable():
        raise InvalidInput("display_name must be at most 100 printable characters", field="name")
    sealed = encryption.encrypt(secret_key, client_secret, purpose=PURPOSE)
    # Two admins setting it at once: the later waits for the earlier and replaces its values.
    provider, created = unique_rows.insert_or_find(
        session,
        OidcProvider,
        {"organisation_id": organisation.id},
        {
            "issuer": issuer,
            "client_id": client_id,
            "display_name": name,
            "sealed_client_secret": sealed,
            "callback_id": secrets.token_hex(16),
            "shared_callback": bool(shared_callback),
        },
        lock=True,
    )
    before = None if created else _public(provider)
    # Only iss and sub identify someone; a new client at the same issuer may see new subs.
    client_changed = not created and provider.issuer == issuer and provider.client_id != client_id
    if not created:
        if provider.issuer != issuer:  # another provider: redirect URIs of its own
            provider.callback_id = secrets.token_hex(16)
        if shared_callback is not None:
            provider.shared_callback = shared_callback
        provider.issuer, provider.client_id, provider.display_name = issuer, client_id, name
        provider.sealed_client_secret = sealed
        provider.updated_at = utcnow()
        session.flush()
    forgotten = provider_accounts.forget_on_provider_change(
        session,
        organisation_id=organisation.id,
        issuer=issuer,
        client_changed=client_changed,
        actor=actor,
    )
    after = {
        **(_public(provider) or {}),
        **({"accounts_forgotten": forgotten} if forgotten else {}),
    }
    _audit(session, organisation, actor, "sign_in.oidc_configured", before, after)
    return provider


def clear(session: Session, *, organisation: Organisation, actor: Actor) -> None:
    # Locked: of two admins clearing it at once, the later finds none (a 404, no audit event).
    provider = session.get(
        OidcProvider, organisation.id, with_for_update=True, populate_existing=True
    )
    if provider is None:
        raise NotFound("this organisation has no OpenID Connect provider")
    before = _public(provider)
    session.delete(provider)
    session.flush()
    _audit(session, organisation, actor, "sign_in.oidc_cleared", before, None)


def provider_for(session: Session, organisation_id: uuid.UUID) -> OidcProvider | None:
    return session.get(OidcProvider, organisation_id)


def provider_by_slug(session: Session, slug: str) -> tuple[Organisation, OidcProvider] | None:
    """The organisation a person names by its slug (the console's sign-in) and its provider,
    or None when there is no such organisation or it has no provider (said the same way)."""
    organisation = session.scalar(select(Organisation).where(Organisation.slug == slug))
    provider = provider_for(session, organisation.id) if organisation else None
    return (organisation, provider) if organisation and provider else None


def client(
    provider: OidcProvider,
    *,
    secret_key: str,
    base_url: str,
    policy: UrlPolicy,
    place: SignInPlace = SignInPlace.ENROLLMENT,
    callback_id: str | None = None,
) -> Client:
    """This service as the provider's client for a sign-in at `place`, the secret decrypted;
    its redirect URI the one `callback_id` names ("" the shared one), else the one in use."""
    if callback_id is None:
        callback_id = callback_in_use(provider)
    return Client(
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=encryption.decrypt(
            secret_key, provider.sealed_client_secret, purpose=PURPOSE
        ),
        redirect_uri=callback_url(base_url, place, callback_id),
        policy=policy,
    )


def callback_in_use(provider: OidcProvider) -> str:
    """The callback id new sign-ins with this provider ask to come back to ("" the shared)."""
    return "" if provider.shared_callback else provider.callback_id


def callback_url(
    base_url: str, place: SignInPlace = SignInPlace.ENROLLMENT, callback_id: str = ""
) -> str:
    """A redirect URI: a provider's own, or ("") the one every organisation shares."""
    own = f"/{callback_id}" if callback_id else ""
    return base_url.rstrip("/") + CALLBACK_PATHS[place] + own


def describe(provider: OidcProvider | None, *, base_url: str) -> dict[str, Any]:
    """What an admin may see, with the redirect URIs to register: never the secret."""
    if provider is None:
        return {"configured": False}
    in_use = callback_in_use(provider)
    return {
        "configured": True,
        **(_public(provider) or {}),
        "redirect_uri": callback_url(base_url, SignInPlace.ENROLLMENT, in_use),
        "console_redirect_uri": callback_url(base_url, SignInPlace.CONSOLE, in_use),
        "own_redirect_uri": callback_url(base_url, SignInPlace.ENROLLMENT, provider.callback_id),
        "own_console_redirect_uri": callback_url(
            base_url, SignInPlace.CONSOLE, provider.callback_id
        ),
    }


def _public(provider: OidcProvider | None) -> dict[str, Any] | None:
    if provider is None:
        return None
    return {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "display_name": provider.display_name,
        "callback_id": provider.callback_id,
        "shared_callback": provider.shared_callback,
    }


def _checked_issuer(issuer: str, policy: UrlPolicy) -> str:
    """An https URL without query or fragment; plain http only on loopback, for trials."""
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("issuer is not a valid URL", field="issuer") from None
    if len(issuer) > 2000 or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput(
            "issuer must be the provider's URL, without query or fragment", field="issuer"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("issuer must not contain credentials", field="issuer")
    if parts.scheme == "https":
        return issuer
    if parts.scheme == "http" and policy.allow_loopback and _is_loopback(parts.hostname):
        return issuer
    raise InvalidInput(
        "issuer must be an https URL (plain http only on loopback, with "
        "OUTBOUND_ALLOW_LOOPBACK=true)",
        field="issuer",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_text(value: str, field: str, longest: int) -> str:
    if not value or len(value) > longest or not set(value) <= PRINTABLE:
        raise InvalidInput(
            f"{field} must be 1 to {longest} printable ASCII characters without spaces",
            field=field,
        )
    return value


def _audit(
    session: Session,
    organisation: Organisation,
    actor: Actor,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action=action,
        target_type="organisation",
        target_id=organisation.id,
        before=before,
        after=after,
    )
