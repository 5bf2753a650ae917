"""A real slapd for the whole run; each test gets a fresh subtree and organisation."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist
import pytest
from ldif import LDIFRecordList
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.actions.directory_connectors import create_connector
from models.db import SessionFactory
from models.directory.runs import lease_name
from models.entities import (
    DirectoryConnector,
    DirectorySyncRun,
    IdentityLink,
    SyncLease,
    Team,
    TeamMembership,
    User,
)
from models.enums import Role, SyncKind
from models.settings import Settings
from tests.support import factories
from tests.support.slapd import ROOT_DN, ROOT_PASSWORD, SUFFIX, Slapd, start_slapd
from tests.support.wait import wait_until
from worker.directory_sync import SyncOutcome, run_sync

SEED = Path(__file__).with_name("seed.ldif")
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


@dataclass
class Directory:
    """One test's subtree of the shared slapd, with helpers to change it."""

    slapd: Slapd
    base: str
    domain: str
    conn: Any

    @property
    def people(self) -> str:
        return f"ou=people,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base}"

    def person_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people}"

    def add(self, dn: str, attrs: dict[str, list[bytes]]) -> None:
        self.conn.add_s(dn, ldap.modlist.addModlist(attrs))

    def add_person(
        self,
        uid: str,
        *,
        name: str | None = None,
        mail: str | None = None,
        extra: dict[str, list[bytes]] | None = None,
        dn: str | None = None,
    ) -> str:
        dn = dn or self.person_dn(uid)
        attrs = {
            "objectClass": [b"inetOrgPerson"],
            "uid": [uid.encode()],
            "cn": [(name or uid.title()).encode()],
            "sn": [b"Test"],
            "mail": [(mail or f"{uid}@{self.domain}").encode()],
            **(extra or {}),
        }
        self.add(dn, attrs)
        return dn

    def replace(self, dn: str, attribute: str, *values: bytes) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_REPLACE, attribute, list(values) or None)])

    def add_values(self, dn: str, attribute: str, *values: bytes) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_ADD, attribute, list(values))])

    def delete_values(self, dn: str, attribute: str, *values: bytes) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_DELETE, attribute, list(values))])

    def delete(self, dn: str) -> None:
        self.conn.delete_s(dn)

    def move(self, dn: str, new_rdn: str, new_superior: str | None = None) -> None:
        self.conn.rename_s(dn, new_rdn, newsuperior=new_superior)

    def entry_uuid(self, dn: str) -> str:
        result = self.conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["entryUUID"])
        return str(result[0][1]["entryUUID"][0].decode())


@pytest.fixture
def directory(slapd: Slapd) -> Iterator[Directory]:
    n = next(_numbers)
    ou = f"t{n}-{uuid.uuid4().hex[:6]}"
    base = f"ou={ou},{SUFFIX}"
    domain = f"{ou}.example.org"
    conn = slapd.connect()
    text = SEED.read_text().format(base=base, ou=ou, domain=domain)
    records = LDIFRecordList(__import__("io").StringIO(text))
    records.parse()
    for dn, entry in records.all_records:
        conn.add_s(dn, ldap.modlist.addModlist(entry))
    yield Directory(slapd=slapd, base=base, domain=domain, conn=conn)
    conn.unbind_s()


def connector_fields(directory: Directory, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "corp",
        "server_urls": [directory.slapd.url],
        "bind_dn": ROOT_DN,
        "base_dn": directory.people,
        "group_base_dn": directory.groups,
        "page_size": 2,
        "connect_timeout": 2.0,
        "search_timeout": 5.0,
        **overrides,
    }


@pytest.fixture
def make_connector(session: Session, settings: Settings, directory: Directory) -> Any:
    """A connector on this test's subtree, for a fresh organisation (percentages relaxed: a
    test directory of four people would trip them at every change)."""

    def make(
        *,
        threshold_percent: int = 100,
        threshold_count: int = 50,
        password: str = ROOT_PASSWORD,
        **overrides: Any,
    ) -> DirectoryConnector:
        org = factories.make_org(session)
        overrides.setdefault(
            "safety",
            {
                "thresholds": {
                    "revoke": {"count": threshold_count, "percent": threshold_percent},
                    "team_remove": {"percent": 100},
                    "demote": {"percent": 100},
                    "reactivate": {"percent": 100},
                    "end_date_clear": {"percent": 100},
                }
            },
        )
        connector = create_connector(
            session,
            organisation=org,
            fields=connector_fields(directory, **overrides),
            bind_password=password,
            settings=settings,
            actor=factories.SETUP,
        )
        session.commit()
        return connector

    return make


@pytest.fixture
def sync(sessions: SessionFactory, settings: Settings) -> Any:
    def run(
        connector: DirectoryConnector, *, kind: SyncKind = SyncKind.FULL, dry_run: bool = False
    ) -> SyncOutcome:
        return run_sync(
            sessions,
            settings,
            connector_id=connector.id,
            kind=kind,
            dry_run=dry_run,
            trigger="test",
        )

    return run


def linked_users(sessions: SessionFactory, connector: DirectoryConnector) -> dict[str, User]:
    """Users this connector owns, by email (a fresh session, so it sees committed data)."""
    with sessions() as s:
        rows = (
            s.execute(
                select(User)
                .join(IdentityLink, IdentityLink.user_id == User.id)
                .where(IdentityLink.connector_id == connector.id)
            )
            .scalars()
            .all()
        )
        s.expunge_all()
        s.rollback()
        return {user.email.split("@")[0]: user for user in rows}


def get_run(sessions: SessionFactory, run_id: str) -> DirectorySyncRun:
    with sessions() as s:
        run = s.get_one(DirectorySyncRun, uuid.UUID(run_id))
        s.expunge_all()
        s.rollback()
        return run


def connector_runs(sessions: SessionFactory, connector: Any) -> list[DirectorySyncRun]:
    """The connector's runs, oldest first (a fresh session)."""
    with sessions() as s:
        query = select(DirectorySyncRun).where(DirectorySyncRun.connector_id == connector.id)
        rows = list(s.scalars(query.order_by(DirectorySyncRun.started_at)))
        s.expunge_all()
        s.rollback()
        return rows


def team_members(sessions: SessionFactory, team: str = "Engineering") -> set[str]:
    """The local parts of the emails of the team's members (a fresh session)."""
    with sessions() as s:
        query = select(TeamMembership).join(Team).where(Team.name == team)
        names = {m.user.email.split("@")[0] for m in s.scalars(query)}
        s.rollback()
    return names


def admin_auth(session: Session) -> tuple[Any, dict[str, str]]:
    """A new organisation and the Authorization header of its admin's API token."""
    org = factories.make_org(session)
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN, email="admin@corp.test")
    token = factories.admin_token(session, org, admin)
    session.commit()
    return org, {"Authorization": f"Bearer {token}"}


@dataclass
class HeldRun:
    auth: dict[str, str]
    connector: DirectoryConnector
    outcome: SyncOutcome


def a_run_held_over_the_api(
    client: Any, session: Session, sessions: SessionFactory, directory: Directory, sync: Any
) -> HeldRun:
    """A connector created over the admin API, synced, then a person deleted from the
    directory: the next run is held (quarantined) for an admin."""
    _, auth = admin_auth(session)
    body = {**connector_fields(directory), "bind_password": ROOT_PASSWORD}
    cid = client.post("/api/v1/directory/connectors", json=body, headers=auth).json["id"]
    with sessions() as s:
        connector = s.get_one(DirectoryConnector, uuid.UUID(cid))
        s.expunge(connector)
        s.rollback()
    sync(connector)
    directory.delete(directory.person_dn("dave"))
    held = sync(connector)
    assert held.status == "quarantined"
    return HeldRun(auth, connector, held)


AD_NEVER = str(0x7FFFFFFFFFFFFFFF).encode()  # accountExpires: never


def ad_filetime(moment: datetime) -> bytes:
    """accountExpires' form: 100 ns ticks since 1601-01-01."""
    delta = moment - datetime(1601, 1, 1, tzinfo=UTC)
    return str((delta.days * 86400 + delta.seconds) * 10_000_000).encode()


AD_CONNECTOR = {
    "preset": "active_directory",
    "attribute_mapping": {"change_attribute": "modifyTimestamp", "change_kind": "timestamp"},
    "user_filter": "(&(objectClass=inetOrgPerson)(objectGUID=*))",
}


def as_ad_accounts(directory: Directory, uids: tuple[str, ...]) -> None:
    """Give these test people what Active Directory accounts carry (GUID, control, expiry)."""
    for uid in uids:
        dn = directory.person_dn(uid)
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "objectGUID", uuid.uuid4().bytes_le)
        directory.replace(dn, "userAccountControl", b"512")
        directory.replace(dn, "sAMAccountName", uid.upper().encode())
        directory.replace(dn, "accountExpires", AD_NEVER)


def held_lease(sessions: SessionFactory, connector: Any) -> tuple[str, datetime] | None:
    """(holder, expiry) of the connector's sync lease, expired or not; None when free."""
    with sessions() as s:
        lease = s.scalar(select(SyncLease).where(SyncLease.name == lease_name(connector.id)))
        held = (lease.holder, as_utc(lease.expires_at)) if lease else None
        s.rollback()
        return held


def lease_renewed_past_its_first_term(
    sessions: SessionFactory, connector: Any, lease_seconds: float
) -> tuple[datetime, datetime]:
    """Wait for a holder to take the connector's lease, then to renew it (its heartbeat) until
    it expires more than a lease after its first expiry: the holder kept it past the moment
    an unrenewed lease would have expired. Returns (first expiry, renewed expiry)."""
    holder, first = wait_until(lambda: held_lease(sessions, connector), what="the lease taken")
    term = timedelta(seconds=lease_seconds)

    def renewed() -> datetime | None:
        now = held_lease(sessions, connector)
        assert now is not None and now[0] == holder, "the holder lost its lease"
        return now[1] if now[1] > first + term else None

    return first, wait_until(renewed, what="the holder renewing its lease")


def as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive UTC datetimes, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def writers_holding_users(sessions: SessionFactory) -> int:
    """Backends other than this one holding rows of `users` they inserted and have not
    committed (PostgreSQL): a streamed import's writers, mid-read."""
    with sessions() as s:
        held = s.scalar(
            text(
                "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'users' AND l.mode = 'RowExclusiveLock' AND l.granted"
                " AND l.pid <> pg_backend_pid()"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        s.rollback()
    return int(held or 0)
