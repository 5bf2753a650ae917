"""Configuring directory connectors: validated fields, the bind password sealed at rest.

Server URLs pass the outbound address policy when saved and again at every connection; a CA
file must lie in the operator's LDAP_CA_DIRECTORY, so an admin cannot make the service open,
or tell apart, arbitrary files of the server. Their names are resolved before the caller's
transaction begins (`resolved_ahead`): a slow name server must not hold a transaction open,
which on SQLite holds the database's write lock.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.ldap.client import ServerConfig
from connectors.ldap.errors import DirectoryConfigError
from connectors.ldap.mapping import AttributeMapping, is_balanced_filter, is_valid_dn, mapping_for
from connectors.outbound import ResolvedNames, UnsafeUrl
from models import audit, locked_rows, unique_rows
from models.actions.teams import validate_team_name
from models.actor import Actor
from models.base import utcnow
from models.directory.safety import merged_policy
from models.encryption import decrypt, encrypt
from models.entities import DirectoryConnector, Organisation
from models.enums import Role
from models.errors import Conflict, InvalidInput, NotFound
from models.settings import Settings
from models.text import check_key_name

PASSWORD_PURPOSE = "directory-bind-password"  # noqa: S105 (a label, not a secret)
MISSING = "directory connector not found"

FIELDS = {
    "name",
    "enabled",
    "server_urls",
    "start_tls",
    "ca_file",
    "verify_tls",
    "bind_dn",
    "base_dn",
    "user_filter",
    "group_base_dn",
    "group_filter",
    "page_size",
    "connect_timeout",
    "search_timeout",
    "full_sync_minutes",
    "incremental_minutes",
    "preset",
    "attribute_mapping",
    "group_teams",
    "group_roles",
    "safety",
}


DEFAULTS: dict[str, Any] = {
    "name": "",
    "enabled": True,
    "server_urls": [],
    "start_tls": False,
    "ca_file": "",
    "verify_tls": True,
    "bind_dn": "",
    "bind_password_encrypted": "",
    "base_dn": "",
    "user_filter": "",
    "group_base_dn": "",
    "group_filter": "",
    "page_size": 500,
    "connect_timeout": 5.0,
    "search_timeout": 60.0,
    "full_sync_minutes": 60,
    "incremental_minutes": 5,
    "preset": "openldap",
    "attribute_mapping": {},
    "group_teams": {},
    "group_roles": {},
    "group_ids": {},
    "safety": {},
    "watermark": "",
}


def get_connector(
    session: Session, organisation_id: uuid.UUID, connector_id: uuid.UUID
) -> DirectoryConnector:
    connector = session.get(DirectoryConnector, connector_id)
    if connector is None or connector.organisation_id != organisation_id:
        raise NotFound(MISSING)
    return connector


def find_connector(session: Session, organisation_id: uuid.UUID, ref: str) -> DirectoryConnector:
    """A connector by id or by name; the only one when `ref` is empty."""
    query = select(DirectoryConnector).where(DirectoryConnector.organisation_id == organisation_id)
    if ref:
        try:
            return get_connector(session, organisation_id, uuid.UUID(ref))
        except ValueError:
            query = query.where(DirectoryConnector.name == ref)
    found = list(session.scalars(query))
    if len(found) != 1:
        raise NotFound(
            "no such directory connector" if not found else "several connectors: name one"
        )
    return found[0]


def create_connector(
    session: Session,
    *,
    organisation: Organisation,
    fields: dict[str, Any],
    bind_password: str | None,
    settings: Settings,
    actor: Actor,
    names: ResolvedNames | None = None,
) -> DirectoryConnector:
    """`names`: the server URLs' names resolved ahead (`resolved_ahead`), or they are
    resolved here, in the caller's transaction."""
    if "base_dn" not in fields or "server_urls" not in fields or "name" not in fields:
        raise InvalidInput("name, server_urls and base_dn are required")
    connector = DirectoryConnector(organisation_id=organisation.id, **DEFAULTS)
    _apply_fields(session, connector, organisation.id, fields, settings, names)
    if bind_password is not None:
        connector.bind_password_encrypted = _seal(settings.secret_key, bind_password)
    with unique_rows.claimed(session, lambda: _name_taken(connector.name)):
        session.add(connector)
    _audit(session, connector, actor, "directory_connector.created", before=None)
    return connector


def update_connector(
    session: Session,
    *,
    connector: DirectoryConnector,
    fields: dict[str, Any],
    bind_password: str | None,
    settings: Settings,
    actor: Actor,
    names: ResolvedNames | None = None,
) -> DirectoryConnector:
    """Locked and read again first: a change at once with another composes after it (a
    merged safety policy keeps both, its audit event's before is the other's after); after a
    delete it is not found (a 404). `names` as for create_connector."""
    connector = locked_rows.locked_or_404(session, connector, MISSING)
    before = _snapshot(connector)
    basis = _basis_before(connector)
    renamed = str(fields.get("name", "")).strip()  # the one key an edit can find taken
    with unique_rows.claimed(session, lambda: _name_taken(renamed)):
        _apply_fields(session, connector, connector.organisation_id, fields, settings, names)
    if bind_password is not None:
        connector.bind_password_encrypted = _seal(settings.secret_key, bind_password)
    connector.updated_at = utcnow()
    after = _snapshot(connector)
    if after != before or bind_password is not None:
        _audit(session, connector, actor, "directory_connector.updated", before=before)
    changed = sorted(
        name
        for name, value in watermark_basis(connector).items()
        if basis is None or basis[name] != value
    )
    if changed and connector.watermark:
        _reset_watermark(session, connector, actor, changed)
    return connector


def _basis_before(connector: DirectoryConnector) -> dict[str, Any] | None:
    """The watermark's basis before an edit; None for a mapping stored before a check that
    now refuses it (none to trust: the edit that makes it whole reads everything afresh)."""
    try:
        return watermark_basis(connector)
    except DirectoryConfigError:
        return None


def watermark_basis(connector: DirectoryConnector) -> dict[str, Any]:
    """What the watermark's meaning rests on: which entries are read, and the attribute (and
    its kind) that dates their changes. A counter (AD uSNChanged) is each server's own."""
    mapping = connector_mapping(connector)
    return {
        "base_dn": connector.base_dn,
        "group_base_dn": connector.group_base_dn,
        "user_filter": mapping.user_filter,
        "group_filter": mapping.group_filter,
        "stable_id": (mapping.stable_id, mapping.stable_id_format),
        "change_attribute": (mapping.change_attribute, mapping.change_kind),
        "server_urls": connector.server_urls if mapping.change_kind == "counter" else None,
    }


def _reset_watermark(
    session: Session, connector: DirectoryConnector, actor: Actor, changed: list[str]
) -> None:
    """The next sync reads everything: an incremental one would count changes from a mark
    that means something else now (another attribute, or entries it never read)."""
    audit.record_change(
        session,
        actor=actor,
        subject=connector,
        action="directory_connector.watermark_reset",
        target_type="directory",
        before={"watermark": connector.watermark},
        after={"watermark": "", "changed": changed},
    )
    connector.watermark = ""


def delete_connector(session: Session, *, connector: DirectoryConnector, actor: Actor) -> None:
    """Locked and read again first: of two deletes at once the later finds none (a 404)."""
    connector = locked_rows.locked_or_404(session, connector, MISSING)
    _audit(
        session,
        connector,
        actor,
        "directory_connector.deleted",
        before=_snapshot(connector),
        deleted=True,
    )
    session.delete(connector)


def server_config(connector: DirectoryConnector, settings: Settings) -> ServerConfig:
    """How to reach the directory; a CA file no longer in the CA directory is not used."""
    return ServerConfig(
        urls=tuple(connector.server_urls),
        bind_dn=connector.bind_dn,
        bind_password=decrypt(
            settings.secret_key, connector.bind_password_encrypted, purpose=PASSWORD_PURPOSE
        ),
        start_tls=connector.start_tls,
        ca_file=_usable_ca_file(connector.ca_file, settings),
        verify_tls=connector.verify_tls,
        connect_timeout=connector.connect_timeout,
        search_timeout=connector.search_timeout,
        policy=settings.outbound_policy(),
    )


def _usable_ca_file(ca_file: str, settings: Settings) -> str:
    if not ca_file:
        return ""
    try:
        return str(ca_path(ca_file, settings))
    except InvalidInput as exc:
        raise DirectoryConfigError(exc.message) from None


def ca_path(ca_file: str, settings: Settings) -> Path:
    """The CA file inside LDAP_CA_DIRECTORY that `ca_file` names (a name relative to it, or a
    path within it); InvalidInput otherwise, saying the same whether or not the file exists
    outside the directory."""
    directory = settings.ldap_ca_directory
    if not directory:
        raise InvalidInput(
            "ca_file cannot be set: the operator has not configured LDAP_CA_DIRECTORY "
            "(leave it empty to use the system's trusted CAs)",
            field="ca_file",
        )
    root = Path(directory).resolve()
    try:
        path = (root / ca_file).resolve()
    except (OSError, ValueError):
        path = root
    if root not in path.parents or not path.is_file():
        raise InvalidInput(
            f"ca_file must name a file in LDAP_CA_DIRECTORY ({root})", field="ca_file"
        )
    return path


def connector_mapping(connector: DirectoryConnector) -> AttributeMapping:
    """The connector's preset with its overrides. DirectoryConfigError when they do not make
    a mapping: refused when saved, or saved before a check that now refuses them (a sync then
    fails as misconfigured, a connection test says so, an edit can put it right)."""
    overrides = dict(connector.attribute_mapping)
    if connector.user_filter:
        overrides["user_filter"] = connector.user_filter
    if connector.group_filter:
        overrides["group_filter"] = connector.group_filter
    try:
        return mapping_for(connector.preset, overrides)
    except ValueError as exc:
        reasons = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise DirectoryConfigError(f"attribute mapping: {reasons}") from None


def _seal(secret_key: str, password: str) -> str:
    if len(password) > 1000:
        raise InvalidInput("the bind password is too long", field="bind_password")
    return encrypt(secret_key, password, purpose=PASSWORD_PURPOSE) if password else ""


def _apply_fields(
    session: Session,
    connector: DirectoryConnector,
    organisation_id: uuid.UUID,
    fields: dict[str, Any],
    settings: Settings,
    names: ResolvedNames | None,
) -> None:
    unknown = set(fields) - FIELDS
    if unknown:
        raise InvalidInput(f"unknown connector fields: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        if name == "safety":
            value = merged_policy(connector.safety, value)
        setattr(connector, name, value)
    _validate(session, connector, organisation_id)
    if "server_urls" in fields:
        policy = settings.outbound_policy()
        if names is None or names.policy != policy:
            names = ResolvedNames(policy)  # nothing resolved ahead: each is resolved now
        for url in connector.server_urls:
            _check_destination(url, names)
    if fields.get("ca_file"):
        ca_path(connector.ca_file, settings)


def resolved_ahead(server_urls: list[str] | None, settings: Settings) -> ResolvedNames:
    """The names of these server URLs resolved and judged now, before the caller's
    transaction; a URL that names no server is left to the check in it to refuse."""
    found = []
    for url in server_urls or []:
        try:
            host, port = _destination(url)
        except ValueError:
            continue
        if host:
            found.append((host, port))
    return ResolvedNames.ahead(settings.outbound_policy(), found)


def _destination(url: str) -> tuple[str, int]:
    """The host and port of an LDAP URL (ValueError for a bad one)."""
    parsed = urlparse(url)
    return parsed.hostname or "", parsed.port or (636 if parsed.scheme == "ldaps" else 389)


def _check_destination(url: str, names: ResolvedNames) -> None:
    try:
        names.resolve_checked(*_destination(url))
    except ValueError:
        raise InvalidInput(f"{url!r} has a bad port", field="server_urls") from None
    except UnsafeUrl as exc:
        raise InvalidInput(f"{url!r}: {exc.reason}", field="server_urls") from None


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a connector named {name!r} already exists", field="name")


def _validate(session: Session, connector: DirectoryConnector, organisation_id: uuid.UUID) -> None:
    name = (connector.name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("name must be 1 to 100 characters", field="name")
    # Not flushed first: the connector's new name would reach the unique index before the
    # clash is found, an IntegrityError (a 500) instead of this 409.
    with session.no_autoflush:
        clash = session.scalar(
            select(DirectoryConnector).where(
                DirectoryConnector.organisation_id == organisation_id,
                DirectoryConnector.name == name,
            )
        )
    if clash is not None and clash is not connector:
        raise _name_taken(name)
    connector.name = name
    if not connector.server_urls:
        raise InvalidInput("at least one server URL is required", field="server_urls")
    for url in connector.server_urls:
        try:
            parsed = urlparse(url)
        except ValueError:  # an unclosed IPv6 bracket: "ldap://[::1"
            raise InvalidInput(f"{url!r} is not a valid URL", field="server_urls") from None
        if parsed.scheme not in {"ldap", "ldaps"} or not parsed.hostname:
            raise InvalidInput(f"{url!r} is not an ldap:// or ldaps:// URL", field="server_urls")
    for field_name in ("base_dn", "group_base_dn", "bind_dn"):
        value = getattr(connector, field_name) or ""
        if value and not is_valid_dn(value):
            raise InvalidInput(f"{field_name} {value!r} is not a valid DN", field=field_name)
    if not connector.base_dn:
        raise InvalidInput("base_dn is required", field="base_dn")
    for field_name in ("user_filter", "group_filter"):
        value = getattr(connector, field_name) or ""
        if value and not is_balanced_filter(value):
            raise InvalidInput(f"{field_name} is not a parenthesised LDAP filter", field=field_name)
    _check_range(connector.page_size, 1, 10_000, "page_size")
    _check_range(connector.connect_timeout, 0.1, 300, "connect_timeout")
    _check_range(connector.search_timeout, 0.1, 3600, "search_timeout")
    _check_range(connector.full_sync_minutes, 0, 7 * 24 * 60, "full_sync_minutes")
    _check_range(connector.incremental_minutes, 0, 7 * 24 * 60, "incremental_minutes")
    try:
        connector_mapping(connector)
    except DirectoryConfigError as exc:
        raise InvalidInput(exc.message, field="attribute_mapping") from None
    for group, role in connector.group_roles.items():
        check_key_name(group, field="group_roles")
        if role not in {Role.ORG_ADMIN.value, Role.MANAGER.value, Role.USER.value}:
            raise InvalidInput(f"group {group!r}: role must be ORG_ADMIN, MANAGER or USER")
    for group, team in connector.group_teams.items():
        if not group.strip():
            raise InvalidInput("group_teams: a group name is empty", field="group_teams")
        check_key_name(group, field="group_teams")
        try:
            validate_team_name(team)  # the sync creates the team by this name
        except InvalidInput as exc:
            raise InvalidInput(
                f"group {group!r}: team {exc.message}", field="group_teams"
            ) from None


def _check_range(value: float, low: float, high: float, name: str) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low} to {high}", field=name)


def _snapshot(connector: DirectoryConnector) -> dict[str, Any]:
    from models.queries.directory import connector_view

    view = connector_view(connector)
    for volatile in ("watermark", "last_full_sync_at", "last_incremental_sync_at"):
        view.pop(volatile)
    return view


def _audit(
    session: Session,
    connector: DirectoryConnector,
    actor: Actor,
    action: str,
    *,
    before: dict[str, Any] | None,
    deleted: bool = False,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=connector,
        action=action,
        target_type="directory",
        before=before,
        after=None if deleted else _snapshot(connector),
    )
