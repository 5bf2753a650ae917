"""A directory that fails in the middle of a sync, each way a real slapd can: the run fails
saying why (its audit event and the admins' alert name it), nobody is revoked for being
absent from a read that never ended, and the next run, the fault gone, reads everyone and
cuts off the leaver the failed run could not. bob is deleted from the directory before the
fault, so a run that took the partial read for the truth would revoke him (and the others
never read)."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist
import pytest
from ldif import LDIFRecordList
from sqlalchemy import select

from connectors.ldap.client import DirectoryClient
from models.entities import AuditEvent, DirectoryConnector
from models.enums import UserStatus
from tests.ldap.conftest import SEED, get_run, linked_users
from tests.support.parallel import in_thread
from tests.support.slapd import Slapd, start_slapd
from tests.support.wait import wait_until


@pytest.fixture
def own_slapd(tmp_path, directory) -> Iterator[Slapd]:
    """A slapd of this test's own, seeded as the shared one's subtree, to kill or freeze."""
    own = start_slapd(tmp_path / "own-slapd")
    try:
        conn = own.connect()
        text = SEED.read_text().format(
            base=directory.base, ou=directory.base.split(",")[0][3:], domain=directory.domain
        )
        records = LDIFRecordList(io.StringIO(text))
        records.parse()
        for dn, entry in records.all_records:
            conn.add_s(dn, ldap.modlist.addModlist(entry))
        conn.unbind_s()
        yield own
    finally:
        if own.process is not None and own.process.poll() is None:
            own.process.send_signal(signal.SIGCONT)
        own.stop()


def _after_the_first_page_of_people(monkeypatch, fault: Callable[[], None]) -> list[int]:
    """Run `fault` once the first page of people has arrived; the list counts the calls."""
    receive = DirectoryClient._receive
    done: list[int] = []

    def then_fault(self, msgid, base, filterstr, **kwargs):
        answer = receive(self, msgid, base, filterstr, **kwargs)
        if "inetOrgPerson" in filterstr and not done:
            done.append(1)
            fault()
        return answer

    monkeypatch.setattr(DirectoryClient, "_receive", then_fault)
    return done


def _failed_safely(sync, sessions, connector, code: str) -> str:
    outcome = sync(connector)
    assert outcome.status == "failed", outcome
    run = get_run(sessions, outcome.run_id)
    assert run.error_code == code, run.error
    assert run.revoked_count == 0
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert all(u.status is UserStatus.ACTIVE for u in users.values())
    with sessions() as s:
        failed = s.scalars(
            select(AuditEvent.after).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "directory_sync.failed",
            )
        ).all()
        s.rollback()
    assert [(e["run_id"], e["error_code"]) for e in failed] == [(outcome.run_id, code)]
    return run.error


def _recovers(sync, sessions, connector, joined: tuple[str, ...] = ()) -> None:
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome
    statuses = {n: u.status for n, u in linked_users(sessions, connector).items()}
    assert statuses == {
        "alice": UserStatus.ACTIVE,
        "bob": UserStatus.REVOKED,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
        **dict.fromkeys(joined, UserStatus.ACTIVE),
    }


def _synced_then_bob_left(make_connector, sync, own: Slapd, directory, **fields: Any):
    connector = make_connector(server_urls=[own.url], page_size=1, **fields)
    assert sync(connector).status == "succeeded"
    conn = own.connect()
    conn.delete_s(directory.person_dn("bob"))
    conn.unbind_s()
    return connector


def test_a_directory_killed_mid_paged_search(
    make_connector, sync, sessions, directory, own_slapd, monkeypatch
):
    connector = _synced_then_bob_left(make_connector, sync, own_slapd, directory)

    def kill() -> None:
        assert own_slapd.process is not None
        own_slapd.process.kill()
        own_slapd.process.wait()

    _after_the_first_page_of_people(monkeypatch, kill)
    error = _failed_safely(sync, sessions, connector, "directory_unavailable")
    assert "Can't contact LDAP server" in error, error
    monkeypatch.undo()
    own_slapd.start()  # the same data and port
    _recovers(sync, sessions, connector)


def _threads_stopped(pid: int) -> bool:
    """Every thread of the process is stopped (SIGSTOP is acted on asynchronously)."""
    tasks = Path(f"/proc/{pid}/task")
    return all(
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T" for task in tasks.iterdir()
    )


def _freeze(own: Slapd) -> None:
    assert own.process is not None
    own.process.send_signal(signal.SIGSTOP)
    wait_until(lambda: _threads_stopped(own.process.pid), what="slapd stopped")


def test_a_directory_frozen_mid_paged_search_times_out(
    make_connector, sync, sessions, directory, own_slapd, monkeypatch
):
    """SIGSTOP after the first page: the next page never comes; the search's configured
    timeout ends the wait (the worker is not held for ever) and the run fails."""
    connector = _synced_then_bob_left(
        make_connector, sync, own_slapd, directory, search_timeout=1.0, connect_timeout=1.0
    )
    _after_the_first_page_of_people(monkeypatch, lambda: _freeze(own_slapd))
    error = _failed_safely(sync, sessions, connector, "directory_unavailable")
    assert "did not answer in time" in error, error
    monkeypatch.undo()
    assert own_slapd.process is not None
    own_slapd.process.send_signal(signal.SIGCONT)
    _recovers(sync, sessions, connector)


def test_a_size_limit_exceeded_mid_search(
    make_connector, sync, sessions, directory, settings, own_slapd
):
    """The bind's size limit (3 entries, the paged total too) is below the four people."""
    from models.actions.directory_connectors import update_connector
    from tests.support import factories
    from tests.support.slapd import LIMITED_DN, ROOT_DN, ROOT_PASSWORD

    connector = _synced_then_bob_left(make_connector, sync, own_slapd, directory)
    conn = own_slapd.connect()
    conn.add_s(
        directory.person_dn("erin"),
        ldap.modlist.addModlist(
            {
                "objectClass": [b"inetOrgPerson"],
                "uid": [b"erin"],
                "cn": [b"Erin"],
                "sn": [b"Test"],
                "mail": [f"erin@{directory.domain}".encode()],
            }
        ),
    )
    conn.unbind_s()  # four people: more than the limited bind's three

    def bind_as(dn: str, password: str) -> None:
        with sessions() as s:
            row = s.get_one(DirectoryConnector, connector.id)
            update_connector(
                s,
                connector=row,
                fields={"bind_dn": dn},
                bind_password=password,
                settings=settings,
                actor=factories.SETUP,
            )
            s.commit()

    bind_as(LIMITED_DN, "limited-secret")
    error = _failed_safely(sync, sessions, connector, "directory_incomplete")
    assert "Size limit exceeded" in error, error
    bind_as(ROOT_DN, ROOT_PASSWORD)
    _recovers(sync, sessions, connector, joined=("erin",))


def _move(own: Slapd, dns: list[str], to: str) -> list[str]:
    """Move entries under `to` (their entryUUID kept); their new DNs."""
    conn = own.connect()
    moved = []
    for dn in dns:
        rdn = dn.split(",", 1)[0]
        conn.rename_s(dn, rdn, newsuperior=to)
        moved.append(f"{rdn},{to}")
    conn.unbind_s()
    return moved


@pytest.mark.parametrize(
    "hidden", [("alice", "carol"), ("alice", "carol", "dave")], ids=["half", "none"]
)
def test_a_directory_that_suddenly_returns_half_or_none_of_the_people(
    make_connector, sync, sessions, directory, own_slapd, hidden
):
    """People moved out of the base (an OU reorganised, an ACL change): with bob gone too,
    the read returns half of the people, or none. The mass-change gate holds the plan for an
    admin, audited; nobody is revoked; once they are back, the next run cuts off bob alone."""
    connector = _synced_then_bob_left(
        make_connector, sync, own_slapd, directory, threshold_percent=30
    )
    parked = f"ou=parked,{directory.base}"
    conn = own_slapd.connect()
    conn.add_s(parked, ldap.modlist.addModlist({"objectClass": [b"organizationalUnit"]}))
    conn.unbind_s()
    moved = _move(own_slapd, [directory.person_dn(uid) for uid in hidden], parked)

    outcome = sync(connector)

    assert outcome.status == "quarantined", outcome
    assert get_run(sessions, outcome.run_id).revoked_count == 0
    users = linked_users(sessions, connector)
    assert all(u.status is UserStatus.ACTIVE for u in users.values())
    with sessions() as s:
        held = s.scalars(
            select(AuditEvent.after).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "directory_sync.quarantined",
            )
        ).all()
        s.rollback()
    assert [e["run_id"] for e in held] == [outcome.run_id]
    _move(own_slapd, moved, directory.people)
    _recovers(sync, sessions, connector)


def test_a_base_that_became_a_referral(make_connector, sync, sessions, directory, own_slapd):
    """The people's base answers with a referral (moved to another server): the read is
    incomplete, the run fails saying so; pointed back, the next run recovers."""
    connector = _synced_then_bob_left(make_connector, sync, own_slapd, directory)
    moved = f"ou=moved,{directory.base}"
    conn = own_slapd.connect()
    conn.add_s(
        moved,
        ldap.modlist.addModlist(
            {
                "objectClass": [b"referral", b"extensibleObject"],
                "ou": [b"moved"],
                "ref": [b"ldap://elsewhere.example.test/ou=people,dc=example,dc=org"],
            }
        ),
    )
    conn.unbind_s()
    _set(sessions, connector, base_dn=moved)
    error = _failed_safely(sync, sessions, connector, "directory_incomplete")
    assert "elsewhere.example.test" in error or "Referral" in error, error
    _set(sessions, connector, base_dn=directory.people)
    _recovers(sync, sessions, connector)


def _set(sessions, connector, **fields: Any) -> None:
    with sessions() as s:
        row = s.get_one(DirectoryConnector, connector.id)
        for name, value in fields.items():
            setattr(row, name, value)
        s.commit()


def test_a_directory_frozen_before_the_tls_handshake_times_out(
    make_connector, sync, sessions, directory, own_slapd
):
    """ldaps:// to a slapd frozen (SIGSTOP) before the run: the kernel still accepts the TCP
    connection, and the TLS handshake never gets an answer. libldap's handshake has no
    timeout of its own: the sync waited for ever, holding the worker and renewing the lease,
    so no later sync of the connector could run. Now it fails after the configured timeout;
    resumed, the next run recovers. (The bound below only tells a hang from an answer.)"""
    connector = _synced_then_bob_left(
        make_connector,
        sync,
        own_slapd,
        directory,
        search_timeout=1.0,
        connect_timeout=1.0,
    )
    _set(
        sessions,
        connector,
        server_urls=[own_slapd.ldaps_url],
        ca_file=str(own_slapd.tls.ca_file),
    )
    _freeze(own_slapd)
    syncing, out = in_thread(
        lambda: _failed_safely(sync, sessions, connector, "directory_unavailable")
    )
    syncing.join(90)
    hung = syncing.is_alive()
    assert own_slapd.process is not None
    own_slapd.process.send_signal(signal.SIGCONT)
    syncing.join(90)
    assert not hung, "the sync waited on the frozen directory's TLS handshake"
    assert "error" not in out, out
    _recovers(sync, sessions, connector)


def test_a_first_import_whose_directory_freezes_leaves_nothing_and_recovers(
    make_connector, sync, sessions, directory, own_slapd, monkeypatch
):
    """A first import written while it reads (PostgreSQL, batches of one person): the
    directory freezes after the first page. The run fails by the search timeout, nothing of
    the import is kept, and the import no longer counts as in flight (its transactions, and
    the mark a create looks for, ended). Resumed, the next run imports everyone."""
    from models.import_in_flight import import_in_flight

    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)
    monkeypatch.setattr("models.directory.read.MAX_WAITING", 1)
    connector = make_connector(
        server_urls=[own_slapd.url], page_size=1, search_timeout=1.0, connect_timeout=1.0
    )
    receive = DirectoryClient._receive
    frozen: list[int] = []

    def then_freeze(self, msgid, base, filterstr, **kwargs):
        answer = receive(self, msgid, base, filterstr, **kwargs)
        if "inetOrgPerson" in filterstr and not frozen:
            frozen.append(1)
            _freeze(own_slapd)
        return answer

    monkeypatch.setattr(DirectoryClient, "_receive", then_freeze)
    outcome = sync(connector)
    assert outcome.status == "failed" and "did not answer in time" in outcome.error, outcome
    assert linked_users(sessions, connector) == {}
    with sessions() as s:
        assert not import_in_flight(s, connector.organisation_id)
        s.rollback()
    monkeypatch.setattr(DirectoryClient, "_receive", receive)
    assert own_slapd.process is not None
    own_slapd.process.send_signal(signal.SIGCONT)
    assert sync(connector).status == "succeeded"
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "carol", "dave"]
