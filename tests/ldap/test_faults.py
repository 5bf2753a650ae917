"""Every fault aborts the run with a clear error and revokes nobody who is still there."""

from __future__ import annotations

import io
import socket

import ldap
import ldap.modlist
import pytest
from ldif import LDIFRecordList
from sqlalchemy import select

from connectors.ldap.client import DirectoryClient, ServerConfig
from connectors.ldap.errors import DirectoryIncomplete
from connectors.outbound import UrlPolicy
from models.entities import AuditEvent, DirectoryConnector, OutboxMessage
from models.enums import SyncKind, UserStatus
from tests.ldap.conftest import get_run, linked_users, team_members
from tests.support.net import refused_port
from tests.support.slapd import LIMITED_DN, ROOT_DN, ROOT_PASSWORD


def _reconfigure(sessions, connector, **fields):
    with sessions() as s:
        row = s.get_one(DirectoryConnector, connector.id)
        for name, value in fields.items():
            setattr(row, name, value)
        s.commit()


def _all_active(sessions, connector) -> bool:
    users = linked_users(sessions, connector)
    return len(users) == 4 and all(u.status is UserStatus.ACTIVE for u in users.values())


def _alerts(sessions, event: str) -> list[dict]:
    with sessions() as s:
        found = [
            m.kwargs
            for m in s.scalars(select(OutboxMessage))
            if m.task == "notifications.dispatch" and m.kwargs["event"] == event
        ]
        s.rollback()
        return found


def _fails_safely(sync, sessions, connector, code: str) -> str:
    outcome = sync(connector)
    assert outcome.status == "failed"
    run = get_run(sessions, outcome.run_id)
    assert run.error_code == code, run.error
    assert run.revoked_count == 0
    assert _all_active(sessions, connector)
    assert any(
        a["payload"]["run_id"] == outcome.run_id for a in _alerts(sessions, "directory_sync.failed")
    )
    return run.error


def test_server_down(make_connector, sync, sessions):
    connector = make_connector()
    sync(connector)
    with refused_port() as down:
        _reconfigure(sessions, connector, server_urls=[f"ldap://127.0.0.1:{down}"])
        error = _fails_safely(sync, sessions, connector, "directory_unavailable")
    assert "no LDAP server answered" in error


def test_second_url_is_used_when_the_first_is_down(make_connector, sync, sessions, slapd):
    with refused_port() as down:
        connector = make_connector(server_urls=[f"ldap://127.0.0.1:{down}", slapd.url])
        assert sync(connector).status == "succeeded"


def test_server_that_never_answers_times_out(make_connector, sync, sessions):
    connector = make_connector()
    sync(connector)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(5)  # accepts connections at the TCP level, never answers LDAP
        port = hung.getsockname()[1]
        _reconfigure(
            sessions,
            connector,
            server_urls=[f"ldap://127.0.0.1:{port}"],
            search_timeout=0.5,
            connect_timeout=0.5,
        )
        error = _fails_safely(sync, sessions, connector, "directory_unavailable")
    assert "no LDAP server answered" in error


def test_wrong_password(make_connector, sync, sessions, settings):
    from models.actions.directory_connectors import update_connector
    from tests.support import factories

    connector = make_connector()
    sync(connector)
    with sessions() as s:
        row = s.get_one(DirectoryConnector, connector.id)
        update_connector(
            s,
            connector=row,
            fields={},
            bind_password="wrong",
            settings=settings,
            actor=factories.SETUP,
        )
        s.commit()
    error = _fails_safely(sync, sessions, connector, "directory_auth_failed")
    assert "Invalid credentials" in error and "wrong" not in error


def test_tls_with_the_right_ca_works_ldaps_and_starttls(make_connector, sync, slapd):
    ldaps = make_connector(server_urls=[slapd.ldaps_url], ca_file=str(slapd.tls.ca_file))
    assert sync(ldaps).status == "succeeded"
    starttls = make_connector(start_tls=True, ca_file=str(slapd.tls.ca_file))
    assert sync(starttls).status == "succeeded"


def test_tls_failure_with_an_untrusted_certificate(make_connector, sync, sessions, slapd):
    connector = make_connector()
    sync(connector)
    _reconfigure(
        sessions, connector, server_urls=[slapd.ldaps_url], ca_file=str(slapd.tls.other_ca_file)
    )
    error = _fails_safely(sync, sessions, connector, "directory_unavailable")
    assert "TLS certificate was not trusted" in error
    _reconfigure(sessions, connector, server_urls=[slapd.url], start_tls=True)
    _fails_safely(sync, sessions, connector, "directory_tls_failed")


def test_size_limit_aborts(make_connector, sync, sessions, settings):
    from models.actions.directory_connectors import update_connector
    from tests.support import factories

    connector = make_connector()
    sync(connector)
    with sessions() as s:
        row = s.get_one(DirectoryConnector, connector.id)
        update_connector(
            s,
            connector=row,
            fields={"bind_dn": LIMITED_DN},
            bind_password="limited-secret",
            settings=settings,
            actor=factories.SETUP,
        )
        s.commit()
    error = _fails_safely(sync, sessions, connector, "directory_incomplete")
    assert "Size limit exceeded" in error


def test_client_reports_time_limit_as_incomplete(slapd, directory):
    """A server-side time limit is an incomplete read (timelimit sent with the search)."""
    config = ServerConfig(
        urls=(slapd.url,),
        bind_dn=ROOT_DN,
        bind_password=ROOT_PASSWORD,
        policy=UrlPolicy(allow_loopback=True),
    )
    with DirectoryClient(config) as client:
        from connectors.ldap.client import map_error

        error = map_error(ldap.TIMELIMIT_EXCEEDED({"desc": "Time limit exceeded"}), doing="x")
        assert isinstance(error, DirectoryIncomplete)
        assert client.count(directory.people, "(objectClass=inetOrgPerson)", page_size=1) == 4


CHILD_HOST = "child.corp.example.test"
CHILD_DOMAIN = f"ldap://{CHILD_HOST}/DC=child,DC=corp,DC=example,DC=test"


def _child_domain_reference(directory, under: str) -> None:
    """What Active Directory returns for a child domain below the base: a continuation
    reference to another naming context, held on another server."""
    directory.add(
        f"dc=child,{under}",
        {
            "objectClass": [b"referral", b"extensibleObject"],
            "dc": [b"child"],
            "ref": [CHILD_DOMAIN.encode()],
        },
    )


@pytest.mark.parametrize("kind", [SyncKind.FULL, SyncKind.INCREMENTAL], ids=["full", "incremental"])
def test_a_child_domain_reference_is_an_incomplete_read_that_locks_nobody_out(
    make_connector, sync, sessions, directory, kind
):
    """A reference to another naming context (an AD child domain) under the people's and
    the groups' base is not followed: what was read is applied (a new person created, a
    disabled one revoked), and nothing the unread part could hold is decided from its
    absence (a deleted person stays, nobody leaves a team); the run says so, audited and
    the admins told."""
    connector = make_connector(group_teams={"engineering": "Engineering"})
    assert sync(connector).status == "succeeded"
    _child_domain_reference(directory, directory.people)
    _child_domain_reference(directory, directory.groups)
    directory.delete(directory.person_dn("dave"))
    directory.replace(directory.person_dn("alice"), "pwdAccountLockedTime", b"000001010000Z")
    directory.delete_values(
        f"cn=engineering,{directory.groups}", "member", directory.person_dn("bob").encode()
    )
    directory.add_person("erin")
    outcome = sync(connector, kind=kind)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    # (the server gives the URL as it refers: lower-cased, with the search's scope)
    assert "deprovisioning withheld" in run.error and CHILD_HOST in run.error
    assert run.plan["team_removes"] == [] and run.plan["withheld"] == {"team_remove": 1}
    users = linked_users(sessions, connector)
    statuses = {name: user.status for name, user in users.items()}
    assert statuses == {
        "alice": UserStatus.REVOKED,
        "bob": UserStatus.ACTIVE,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
        "erin": UserStatus.ACTIVE,
    }
    assert "bob" in team_members(sessions)
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "directory_sync.deprovision_withheld",
            )
        ).all()
        assert [e.after["run_id"] for e in events] == [outcome.run_id]
        assert CHILD_HOST in events[0].after["reason"]
        s.rollback()
    assert any(
        a["payload"]["run_id"] == outcome.run_id
        for a in _alerts(sessions, "directory_sync.deprovision_withheld")
    )


def test_the_connection_check_reads_past_a_child_domain_reference_as_the_sync_does(
    make_connector, sync, sessions, settings, directory
):
    """The check counts what this server holds and says what it was referred elsewhere for,
    where it failed on the reference while the sync it checks for reads past it."""
    from models.directory.connection_check import test_connection

    connector = make_connector(group_teams={"engineering": "Engineering"})
    _child_domain_reference(directory, directory.people)
    _child_domain_reference(directory, directory.groups)

    result = test_connection(connector, settings, username="bob")

    assert result["ok"], result
    assert (result["users"], result["sample"]["username"]) == (4, "bob")
    assert result["groups"] > 0
    assert [CHILD_HOST in url for url in result["references"]] == [True]
    assert CHILD_HOST in result["warning"] and "withholds deprovisioning" in result["warning"]
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert CHILD_HOST in get_run(sessions, outcome.run_id).error


def test_bad_base_dn_is_a_configuration_error(make_connector, sync, sessions, directory):
    connector = make_connector()
    sync(connector)
    _reconfigure(sessions, connector, base_dn=f"ou=nowhere,{directory.base}")
    _fails_safely(sync, sessions, connector, "directory_config_error")


def test_entry_without_stable_id_withholds_all_deprovisioning(
    make_connector, sync, sessions, directory
):
    for uid, number in (("alice", b"1"), ("bob", b"2"), ("carol", b"3"), ("dave", b"4")):
        directory.replace(directory.person_dn(uid), "employeeNumber", number)
    connector = make_connector(attribute_mapping={"stable_id": "employeeNumber"})
    sync(connector)
    # the attribute disappears from one entry (an ACL change, a schema slip) and one leaves
    directory.replace(directory.person_dn("carol"), "employeeNumber")
    directory.delete(directory.person_dn("dave"))
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert outcome.status == "succeeded"
    assert run.revoked_count == 0 and "withheld" in run.error
    assert any("no employeeNumber" in e["message"] for e in run.plan["errors"])
    assert all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())
    assert _alerts(sessions, "directory_sync.deprovision_withheld")


def test_duplicate_emails_create_neither(make_connector, sync, sessions, directory):
    directory.add_person("alice2", mail=f"alice@{directory.domain}")
    connector = make_connector()
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert sorted(linked_users(sessions, connector)) == ["bob", "carol", "dave"]
    duplicates = [e for e in run.plan["errors"] if "more than one" in e["message"]]
    assert len(duplicates) == 2 and run.error_count == 2


def test_non_utf8_value_is_reported_and_the_person_kept(make_connector, sync, sessions, directory):
    connector = make_connector(attribute_mapping={"name": ["legacyName", "cn"]})
    sync(connector)
    dn = directory.person_dn("bob")
    directory.add_values(dn, "objectClass", b"odockTestAccount")
    directory.replace(dn, "legacyName", b"B\xf6b")  # Latin-1, not UTF-8
    outcome = sync(connector)
    run = get_run(sessions, outcome.run_id)
    assert run.error_count == 1 and run.revoked_count == 0
    assert "legacyName is not valid UTF-8" in run.plan["errors"][0]["message"]
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE


def test_filter_and_dn_metacharacters(make_connector, sync, sessions, directory, settings):
    from connectors.ldap.mapping import escape_dn_value
    from models.directory.connection_check import test_connection

    odd_uid = "o'neil, jr (it) *\\"
    dn = f"uid={escape_dn_value(odd_uid)},{directory.people}"
    directory.add_person(odd_uid, name="Smith (IT) *", mail=f"oneil@{directory.domain}", dn=dn)
    directory.add_values(f"cn=engineering,{directory.groups}", "member", dn.encode())
    connector = make_connector(group_teams={"engineering": "Engineering"})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert users["oneil"].name == "Smith (IT) *"
    run = get_run(sessions, outcome.run_id)
    assert len([a for a in run.plan["team_adds"]]) == 4
    result = test_connection(connector, settings, username=odd_uid)
    assert result["ok"] and result["sample"]["email"] == f"oneil@{directory.domain}"
    assert test_connection(connector, settings, username="*")["sample"] is None


def _cookie_of_a_closed_connection(slapd, base: str) -> bytes:
    """The cookie of a paged search on another connection, which has closed since: a cookie
    the server no longer holds, as after a restart or behind a load balancer."""
    from ldap.controls import SimplePagedResultsControl

    conn = slapd.connect()
    control = SimplePagedResultsControl(True, size=1, cookie=b"")
    msgid = conn.search_ext(
        base, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"], serverctrls=[control]
    )
    _, _, _, controls = conn.result3(
        msgid, resp_ctrl_classes={control.controlType: SimplePagedResultsControl}
    )
    conn.unbind_s()
    cookie = next(c.cookie for c in controls if c.controlType == control.controlType)
    assert cookie
    return bytes(cookie)


def test_a_page_cookie_the_server_no_longer_holds_revokes_nobody(
    make_connector, sync, sessions, directory, monkeypatch
):
    """The server refuses the next page's cookie in the middle of the people (slapd: Protocol
    error 'paged results cookie is invalid'; AD: unwillingToPerform): the read is incomplete,
    so the run fails as one, and bob, deleted meanwhile, is not revoked."""
    connector = make_connector(page_size=1)
    sync(connector)
    directory.delete(directory.person_dn("bob"))
    stale = _cookie_of_a_closed_connection(directory.slapd, directory.people)
    send = DirectoryClient._send

    def with_a_stale_cookie(self, base, filterstr, attrs, control):
        if control.cookie and "inetOrgPerson" in filterstr:
            control.cookie = stale
        return send(self, base, filterstr, attrs, control)

    monkeypatch.setattr(DirectoryClient, "_send", with_a_stale_cookie)
    error = _fails_safely(sync, sessions, connector, "directory_incomplete")
    assert "cookie after 1 page" in error and "cookie is invalid" in error, error


def test_a_directory_killed_in_the_middle_of_the_people_revokes_nobody(
    make_connector, sync, sessions, directory, tmp_path, monkeypatch
):
    """A slapd of this test's own, seeded as the shared one, is killed (SIGKILL) once the
    first page of people has arrived: the run fails as unavailable, saying so, and bob,
    deleted before, is not revoked for being absent from a read that never ended."""
    from tests.ldap.conftest import SEED
    from tests.support.slapd import start_slapd

    own = start_slapd(tmp_path / "own-slapd")
    try:
        conn = own.connect()
        records = LDIFRecordList(
            io.StringIO(
                SEED.read_text().format(
                    base=directory.base,
                    ou=directory.base.split(",")[0][3:],
                    domain=directory.domain,
                )
            )
        )
        records.parse()
        for dn, entry in records.all_records:
            conn.add_s(dn, ldap.modlist.addModlist(entry))
        connector = make_connector(server_urls=[own.url], page_size=1)
        outcome = sync(connector)
        assert outcome.status == "succeeded", outcome.error
        conn.delete_s(directory.person_dn("bob"))
        conn.unbind_s()
        receive = DirectoryClient._receive

        def then_kill(self, msgid, base, filterstr, **kwargs):
            answer = receive(self, msgid, base, filterstr, **kwargs)
            if "inetOrgPerson" in filterstr and own.process is not None:
                own.process.kill()
                own.process.wait()
            return answer

        monkeypatch.setattr(DirectoryClient, "_receive", then_kill)
        error = _fails_safely(sync, sessions, connector, "directory_unavailable")
        assert "Can't contact LDAP server" in error, error
    finally:
        own.stop()


def test_active_directory_partition_references_are_not_people_elsewhere(
    make_connector, sync, sessions, directory
):
    """Searched from a domain's root, Active Directory returns continuation references to
    its DNS and configuration partitions (DomainDnsZones, ForestDnsZones, Configuration),
    which hold no people: they are not followed and do not fail the read. Any other
    reference still does (test_referral_in_the_base_aborts)."""
    connector = make_connector()
    sync(connector)
    host = "ldap://corp.example.test"
    for rdn, target in (
        ("dc=DomainDnsZones", f"{host}/DC=DomainDnsZones,DC=corp,DC=example,DC=test"),
        ("dc=ForestDnsZones", f"{host}/DC=ForestDnsZones,DC=corp,DC=example,DC=test"),
        ("cn=Configuration", f"{host}/CN=Configuration,DC=corp,DC=example,DC=test"),
    ):
        attribute, value = rdn.split("=")
        directory.add(
            f"{rdn},{directory.people}",
            {
                "objectClass": [b"referral", b"extensibleObject"],
                attribute: [value.encode()],
                "ref": [target.encode()],
            },
        )
    directory.delete(directory.person_dn("bob"))
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    assert (run.read_count, run.revoked_count) == (3, 1)


def test_a_server_that_caps_pages_below_the_page_size_says_so_and_pages_below_it(
    make_connector, sync, sessions, directory, tmp_path
):
    """slapd's `size.pr` caps a page and `size.soft`/`size.hard` the entries of a search
    below the directory's four people, while `size.prtotal=unlimited` lets a paged search go
    past them. Asked for pages of 500 the server refuses (adminLimitExceeded): the run fails
    naming page_size, nobody revoked; with pages of 2 it reads everyone, page by page."""
    from tests.ldap.conftest import SEED
    from tests.support.slapd import prepare_slapd

    own = prepare_slapd(tmp_path / "capped-slapd")
    conf = own.directory / "slapd.conf"
    capped = "size.soft=3 size.hard=3 size.pr=2 size.prtotal=unlimited"
    lines = conf.read_text().splitlines()
    conf.write_text(
        "\n".join(
            f'limits dn.exact="{LIMITED_DN}" {capped}' if line.startswith("limits ") else line
            for line in lines
        )
        + "\n"
    )
    own.start_on_free_ports()
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
        connector = make_connector(
            server_urls=[own.url], page_size=2, bind_dn=LIMITED_DN, password="limited-secret"
        )
        outcome = sync(connector)
        assert outcome.status == "succeeded", outcome.error
        assert get_run(sessions, outcome.run_id).read_count == 4
        _reconfigure(sessions, connector, page_size=500)
        error = _fails_safely(sync, sessions, connector, "directory_config_error")
        assert "page_size" in error and "500" in error, error
    finally:
        own.stop()
