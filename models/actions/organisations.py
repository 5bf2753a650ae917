"""Creating organisations and changing their settings."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit, unique_rows
from models.actor import Actor
from models.entities import Organisation, OrganisationSettings
from models.errors import Conflict, InvalidInput, NotFound
from models.text import clean_text

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "org"


def create_organisation(
    session: Session, *, name: str, slug: str | None = None, actor: Actor
) -> Organisation:
    name = clean_text(name, field="name", max_length=200)
    slug = slug or slugify(name)
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput("slug must be lowercase letters, digits and dashes", field="slug")

    def taken() -> Conflict:
        return Conflict(f"an organisation with slug {slug!r} already exists", field="slug")

    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
        raise taken()
    organisation = Organisation(name=name, slug=slug)
    organisation.settings = OrganisationSettings()
    with unique_rows.claimed(session, taken):  # two creates of one slug at once: one 409s
        session.add(organisation)
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="organisation.created",
        target_type="organisation",
        target_id=organisation.id,
        after={"name": name, "slug": slug},
    )
    return organisation


def get_organisation_by_slug(session: Session, slug: str) -> Organisation:
    organisation = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if organisation is None:
        raise NotFound(f"no organisation with slug {slug!r}")
    return organisation


def update_settings(
    session: Session, *, organisation: Organisation, changes: dict[str, Any], actor: Actor
) -> OrganisationSettings:
    """Apply validated setting changes (the caller validates types and bounds)."""
    settings = organisation.settings
    # Two admins at once: the second waits and records what the first left as its `before`.
    session.flush()
    session.refresh(settings, with_for_update=True)
    changed = {
        name: value
        for name, value in changes.items()
        if _plain(getattr(settings, name)) != _plain(value)
    }
    if not changed:  # nothing changes, so nothing to audit
        return settings
    before = {name: _plain(getattr(settings, name)) for name in changed}
    for name, value in changed.items():
        setattr(settings, name, value)
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="organisation.settings_changed",
        target_type="organisation",
        target_id=organisation.id,
        before=before,
        after={name: _plain(value) for name, value in changed.items()},
    )
    return settings


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)
