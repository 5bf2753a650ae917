"""Configuring an organisation's IdP event hooks: the Okta authorization header and the
signing secrets of generic events. Secrets are shown once, then kept hashed or encrypted."""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit, encryption, inbound_secrets, unique_rows
from models.actor import Actor
from models.base import utcnow
from models.entities import EventHookConfig, Organisation
from models.errors import InvalidInput, NotFound
from models.inbound_secrets import AddedSecret
from models.secrets import new_secret

HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")


def get_config(session: Session, organisation_id: uuid.UUID) -> EventHookConfig:
    """The organisation's hook configuration, created empty on first use (by one of two
    admins at once: the other goes on with it)."""
    config = session.get(EventHookConfig, organisation_id)
    if config is None:
        config, _ = unique_rows.insert_or_find(
            session, EventHookConfig, {"organisation_id": organisation_id}, {"signing_secrets": []}
        )
    return config


def set_okta_secret(
    session: Session,
    *,
    organisation: Organisation,
    secret_key: str,
    actor: Actor,
    secret: str | None = None,
    header_name: str = "Authorization",
    custom_header: tuple[str, str] | None = None,
) -> str:
    """Set (or replace) what Okta must send; returns the authorization value to paste in Okta."""
    secret = secret or new_secret("okta")
    if not 16 <= len(secret) <= 1000:
        raise InvalidInput("the Okta secret must be 16 to 1000 characters", field="secret")
    _check_header_name(header_name, "header_name")
    if custom_header is not None:
        _check_custom_header(custom_header, header_name)
    config = get_config(session, organisation.id)
    inbound_secrets.lock(session, config)
    config.okta_header_name = header_name
    config.okta_secret_hash = encryption.keyed_hash(secret_key, secret)
    if custom_header is not None:
        name, value = custom_header
        config.okta_custom_header_name = name
        config.okta_custom_header_hash = encryption.keyed_hash(secret_key, value)
    else:
        config.okta_custom_header_name = config.okta_custom_header_hash = None
    config.updated_at = utcnow()
    _audit(session, organisation, actor, "event_hooks.okta_secret_set", {"header": header_name})
    return secret


def _check_custom_header(custom_header: tuple[str, str], header_name: str) -> None:
    name, value = custom_header
    _check_header_name(name, "custom_header")
    if name.lower() == header_name.lower():
        # One header cannot carry two values: Okta could never be authorised.
        raise InvalidInput(
            f"the custom header cannot be the authorization header ({header_name})",
            field="custom_header",
        )
    if not value:
        raise InvalidInput("the custom header needs a value", field="custom_header")


def clear_okta_secret(session: Session, *, organisation: Organisation, actor: Actor) -> None:
    """Remove the Okta secret; NotFound when none is set (nothing to clear, nothing audited),
    as a removal of any other absent thing."""
    config = session.get(EventHookConfig, organisation.id)
    if config is not None:
        inbound_secrets.lock(session, config)  # read again: a clear may have committed since
    if config is None or config.okta_secret_hash is None:
        raise NotFound("no Okta secret is set")
    config.okta_secret_hash = config.okta_custom_header_name = None
    config.okta_custom_header_hash = None
    config.updated_at = utcnow()
    _audit(session, organisation, actor, "event_hooks.okta_secret_cleared", {})


def add_signing_secret(
    session: Session,
    *,
    organisation: Organisation,
    secret_key: str,
    actor: Actor,
    secret: str | None = None,
) -> AddedSecret:
    """Add a signing secret (generated unless given); older ones stay valid until removed."""
    config = get_config(session, organisation.id)
    inbound_secrets.lock(session, config)
    config.signing_secrets, added = inbound_secrets.with_added(
        config.signing_secrets, secret_key=secret_key, secret=secret
    )
    config.updated_at = utcnow()
    _audit(session, organisation, actor, "event_hooks.signing_secret_added", {"id": added.id})
    return added


def remove_signing_secret(
    session: Session, *, organisation: Organisation, secret_id: str, actor: Actor
) -> None:
    config = get_config(session, organisation.id)
    inbound_secrets.lock(session, config)
    config.signing_secrets = inbound_secrets.without(config.signing_secrets, secret_id)
    config.updated_at = utcnow()
    _audit(session, organisation, actor, "event_hooks.signing_secret_removed", {"id": secret_id})


def describe(config: EventHookConfig | None, *, base_url: str, slug: str) -> dict[str, Any]:
    """What an admin may see: never a secret, only which ones exist."""
    okta = config is not None and config.okta_secret_hash is not None
    return {
        "okta": {
            "url": f"{base_url}/hooks/okta/{slug}",
            "configured": okta,
            "header_name": config.okta_header_name if okta and config else None,
            "custom_header_name": config.okta_custom_header_name if config else None,
        },
        "events": {
            "url": f"{base_url}/hooks/events/{slug}",
            "signing_secrets": inbound_secrets.described(config.signing_secrets if config else []),
        },
    }


@dataclass(frozen=True)
class HookCredentials:
    """What the receiver needs to check a delivery, read in one query."""

    organisation_id: uuid.UUID
    okta_header_name: str
    okta_secret_hash: str | None
    okta_custom_header_name: str | None
    okta_custom_header_hash: str | None
    encrypted_signing_secrets: list[str]

    def signing_secrets(self, secret_key: str) -> list[str]:
        return [_decrypted(secret_key, s) for s in self.encrypted_signing_secrets]

    def okta_headers(self) -> list[str]:
        """The headers a delivery must carry: the secret's and the custom one, if set."""
        names = [self.okta_header_name]
        if self.okta_custom_header_name and self.okta_custom_header_hash:
            names.append(self.okta_custom_header_name)
        return names

    def okta_headers_present(self, headers: Any) -> bool:
        return all(headers.get(name, "").strip() for name in self.okta_headers())

    def okta_authorised(self, secret_key: str, headers: Any) -> bool:
        """Both configured headers carry the right values (compared in constant time)."""
        if self.okta_secret_hash is None:
            return False
        ok = encryption.matches_keyed_hash(
            secret_key, headers.get(self.okta_header_name, ""), self.okta_secret_hash
        )
        if self.okta_custom_header_name and self.okta_custom_header_hash:
            ok &= encryption.matches_keyed_hash(
                secret_key,
                headers.get(self.okta_custom_header_name, ""),
                self.okta_custom_header_hash,
            )
        return ok


@functools.lru_cache(maxsize=1024)
def _decrypted(secret_key: str, encrypted: str) -> str:
    # Keyed by the ciphertext, so a rotated secret is a new entry: nothing goes stale.
    return encryption.decrypt(secret_key, encrypted)


# slug -> (read at, credentials): the receiver's hot path reads them once per TTL per process.
_CACHE: dict[str, tuple[float, HookCredentials | None]] = {}


def cached_hook_credentials(
    sessions: Callable[[], Session], slug: str, *, ttl_seconds: float
) -> HookCredentials | None:
    """hook_credentials, remembered for `ttl_seconds` (a change elsewhere shows within it);
    a session is opened only when they must be read."""
    now = time.monotonic()
    hit = _CACHE.get(slug)
    if hit is not None and now - hit[0] < ttl_seconds:
        return hit[1]
    with sessions() as session:
        credentials = hook_credentials(session, slug)
    if ttl_seconds <= 0:
        return credentials
    if len(_CACHE) > 10_000:
        _CACHE.clear()
    _CACHE[slug] = (now, credentials)
    return credentials


def remembered_hook_credentials(slug: str, *, ttl_seconds: float) -> HookCredentials | None:
    """The credentials cached_hook_credentials read for `slug` within `ttl_seconds`, if it
    did; never read from the database."""
    hit = _CACHE.get(slug)
    return hit[1] if hit is not None and time.monotonic() - hit[0] < ttl_seconds else None


def forget_credentials(organisation: Organisation) -> None:
    """Drop this process's cached copy after a change (other processes see it within the TTL)."""
    _CACHE.pop(organisation.slug, None)


def hook_credentials(session: Session, slug: str) -> HookCredentials | None:
    row = session.execute(
        select(
            Organisation.id,
            EventHookConfig.okta_header_name,
            EventHookConfig.okta_secret_hash,
            EventHookConfig.okta_custom_header_name,
            EventHookConfig.okta_custom_header_hash,
            EventHookConfig.signing_secrets,
        )
        .join(EventHookConfig, EventHookConfig.organisation_id == Organisation.id)
        .where(Organisation.slug == slug)
    ).one_or_none()
    if row is None:
        return None
    return HookCredentials(
        organisation_id=row[0],
        okta_header_name=row[1],
        okta_secret_hash=row[2],
        okta_custom_header_name=row[3],
        okta_custom_header_hash=row[4],
        encrypted_signing_secrets=[entry["secret"] for entry in row[5] or []],
    )


def _check_header_name(name: str, field: str) -> None:
    if not HEADER_NAME.match(name):
        raise InvalidInput("a header name is letters, digits and dashes", field=field)


def _audit(
    session: Session, organisation: Organisation, actor: Actor, action: str, after: dict[str, Any]
) -> None:
    forget_credentials(organisation)
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action=action,
        target_type="organisation",
        target_id=organisation.id,
        after=after,
    )
