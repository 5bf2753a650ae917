"""Odd directory content, from a real slapd: one bad entry is reported on the run and
skipped, the rest applies, nobody is revoked for it, and the run's report renders in the
admin API and the console (no 500, the odd values escaped)."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from models.directory import read
from models.entities import DirectoryConnector, Organisation
from models.enums import UserStatus
from tests.ldap.conftest import (
    admin_auth,
    connector_fields,
    get_run,
    linked_users,
    team_members,
)
from tests.support import factories
from tests.support.slapd import ROOT_PASSWORD
from tests.support.worker import settings_env

SEEDED = {"alice", "bob", "carol", "dave"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _over_the_api(client, session, sessions, directory, **fields: Any):
    """A connector created over the admin API (thresholds relaxed, so a wrong revocation
    would be applied, not held), its admin's auth header and token."""
    _, auth = admin_auth(session)
    relaxed = {
        "thresholds": {kind: {"percent": 100} for kind in ("revoke", "team_remove", "demote")}
    }
    body = {
        **connector_fields(directory),
        "bind_password": ROOT_PASSWORD,
        "safety": relaxed,
        "group_teams": {"engineering": "Engineering"},
        **fields,
    }
    created = client.post("/api/v1/directory/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.json
    with sessions() as s:
        connector = s.get_one(DirectoryConnector, uuid.UUID(created.json["id"]))
        s.expunge(connector)
        s.rollback()
    return connector, auth


def _rendered(client, auth: dict[str, str], run_id: str) -> tuple[dict[str, Any], str]:
    """The run through the admin API and its console page: both answer 200."""
    shown = client.get(f"/api/v1/directory/runs/{run_id}", headers=auth)
    assert shown.status_code == 200, shown.get_data(as_text=True)[:2000]
    token = auth["Authorization"].removeprefix("Bearer ")
    form = client.get("/console/sign-in").get_data(as_text=True)
    csrf = CSRF.search(form)
    assert csrf
    signed = client.post("/console/sign-in", data={"token": token, "csrf": csrf.group(1)})
    assert signed.status_code == 303
    page = client.get(f"/console/runs/{run_id}")
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    listed = client.get("/console/runs")
    assert listed.status_code == 200
    runs = client.get("/api/v1/directory/connectors", headers=auth)
    assert runs.status_code == 200
    return shown.json, page.get_data(as_text=True)


def _errors_for(run: Any, dn_part: str) -> list[str]:
    return [e["message"] for e in run.plan["errors"] if dn_part in (e.get("dn") or "")]


def _check_applied_and_reported(sessions, connector, outcome, dn_part, *, expected=SEEDED):
    assert outcome.status == "succeeded", (outcome.status, outcome.error)
    run = get_run(sessions, outcome.run_id)
    users = linked_users(sessions, connector)
    assert expected <= set(users), sorted(users)
    assert all(users[name].status is UserStatus.ACTIVE for name in expected)
    reasons = _errors_for(run, dn_part)
    assert reasons, run.plan["errors"]
    return run, reasons


HOSTILE_PEOPLE = {
    # attribute values slapd stores though no sane directory should hold them
    "nul_in_cn": ({"cn": [b"Erin\x00Evil"]}, "name"),
    "nul_in_display_name": ({"displayName": [b"Erin\x00Evil"]}, "name"),
    "control_in_cn": ({"cn": [b"Erin \x1b[31mRed\x07"]}, "name"),
    "nul_in_mail": ({"mail": [b"erin\x00@evil.example"]}, "email"),
    "control_in_mail": ({"mail": [b"er\x01in@evil.example"]}, "email"),
    "encoded_surrogate_in_cn": ({"cn": [b"Erin\xed\xa0\x80"]}, "UTF-8"),
    "huge_mail": ({"mail": [b"e" * 100_000 + b"@evil.example"]}, "email"),
    "space_in_mail": ({"mail": [b"er in@evil.example"]}, "email"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PEOPLE))
def test_an_odd_attribute_value_is_reported_and_the_rest_applies(
    client, session, sessions, directory, sync, case
):
    attrs, reason = HOSTILE_PEOPLE[case]
    dn = directory.add_person("erin", extra=attrs)
    connector, auth = _over_the_api(client, session, sessions, directory)
    outcome = sync(connector)
    _, reasons = _check_applied_and_reported(sessions, connector, outcome, "uid=erin")
    assert "erin" not in linked_users(sessions, connector)
    assert any(reason in message for message in reasons), reasons
    _, page = _rendered(client, auth, outcome.run_id)
    assert "\x00" not in page and "\x1b" not in page
    again = sync(connector)
    assert again.status == "succeeded" and again.summary["revoke"] == 0
    assert dn


def test_nested_groups_thousands_deep_or_in_a_lattice_expand_once(
    client, session, sessions, directory, sync
):
    """1,100 groups each inside the next (recursion ended the run with an internal error)
    and 18 levels of two groups each in both of the level above (2^18 paths walked one by
    one); with them a member outside the base, a relative one, a group in itself and a
    cycle of two groups (slapd refuses a member value that is no DN at all)."""
    erin = directory.add_person("erin")
    frank = directory.add_person("frank")
    chain = [f"cn=chain{i},{directory.groups}" for i in range(1100)]
    for i, dn in reversed(list(enumerate(chain))):
        inner = chain[i + 1] if i + 1 < len(chain) else erin
        directory.add(dn, {"objectClass": [b"groupOfNames"], "member": [inner.encode()]})
    levels = 18
    lattice = [
        [f"cn=lat{level}x{j},{directory.groups}" for j in range(2)] for level in range(levels)
    ]
    for level in reversed(range(levels)):
        below = lattice[level + 1] if level + 1 < levels else [frank]
        for dn in lattice[level]:
            directory.add(
                dn, {"objectClass": [b"groupOfNames"], "member": [m.encode() for m in below]}
            )
    odd = [b"uid=mallory,ou=elsewhere,dc=other,dc=example", b"uid=bob"]
    engineering = f"cn=engineering,{directory.groups}"
    directory.add_values(engineering, "member", chain[0].encode(), lattice[0][0].encode(), *odd)
    directory.add_values(engineering, "member", engineering.encode())  # itself
    loop = f"cn=loop,{directory.groups}"
    directory.add(loop, {"objectClass": [b"groupOfNames"], "member": [engineering.encode()]})
    directory.add_values(engineering, "member", loop.encode())
    connector, auth = _over_the_api(client, session, sessions, directory)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    users = linked_users(sessions, connector)
    assert SEEDED | {"erin", "frank"} <= set(users)
    assert team_members(sessions) == {"alice", "bob", "carol", "erin", "frank"}
    _rendered(client, auth, outcome.run_id)
    again = sync(connector)
    assert again.status == "succeeded" and again.summary["team_remove"] == 0


def test_mails_that_differ_only_in_case_or_unicode_form_are_both_reported(
    client, session, sessions, directory, sync
):
    """Neither entry is created, whatever the order the server lists them in, and both are
    on the run; NFC and NFD spellings of one address are one address (read from a
    directoryString attribute: slapd holds mail as IA5String, ASCII only)."""
    for uid in SEEDED:
        directory.replace(directory.person_dn(uid), "description", f"{uid}@corp.example".encode())
    composed = unicodedata.normalize("NFC", "jos\u00e9@corp.example")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    directory.add_person("jose1", extra={"description": [composed.encode()]})
    directory.add_person("jose2", extra={"description": [decomposed.encode()]})
    directory.add_person("ann1", extra={"description": [b"Ann@corp.example"]})
    directory.add_person("ann2", extra={"description": [b"ann@CORP.example"]})
    connector, auth = _over_the_api(
        client, session, sessions, directory, attribute_mapping={"email": "description"}
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    users = linked_users(sessions, connector)
    assert set(users) == SEEDED, sorted(users)
    for uid in ("jose1", "jose2", "ann1", "ann2"):
        assert any("more than one" in m for m in _errors_for(run, f"uid={uid},")), uid
    _rendered(client, auth, outcome.run_id)
    again = sync(connector)
    assert again.status == "succeeded" and again.summary["create"] == 0
    assert set(linked_users(sessions, connector)) == SEEDED


def test_an_entry_whose_mail_is_a_persons_spelled_another_way_is_that_person(
    client, session, sessions, directory, sync
):
    """One email key for every source (connectors.email_address): an entry whose address is
    a person's (made by an admin) with its domain as an A-label, or in NFD, is linked to that
    person. Before, the sync keyed emails by lower case alone and made a second person who
    read the same."""
    connector, _ = _over_the_api(
        client, session, sessions, directory, attribute_mapping={"email": "description"}
    )
    org = session.get_one(Organisation, connector.organisation_id)
    for uid in SEEDED:
        directory.replace(directory.person_dn(uid), "description", f"{uid}@corp.example".encode())
    ann = factories.make_user(session, org, email="ann@b\u00fccher.example")
    jose = factories.make_user(session, org, email="jos\u00e9@corp.example")
    session.commit()
    directory.add_person("ann", extra={"description": [b"Ann@xn--bcher-kva.example"]})
    decomposed = unicodedata.normalize("NFD", "jos\u00e9@corp.example").encode()
    directory.add_person("jose", extra={"description": [decomposed]})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    assert run.plan["errors"] == []
    linked = {user.id for user in linked_users(sessions, connector).values()}
    assert {ann.id, jose.id} <= linked
    assert outcome.summary["create"] == len(SEEDED)


def test_two_entries_with_one_stable_id_change_nobody_and_are_both_reported(
    client, session, sessions, directory, sync
):
    """A proxy or virtual directory that gives two entries one id: which entry comes first
    is no promise, so neither is taken for the person (no flip-flop of their email from one
    sync to the next), both are reported, and the person is not revoked."""
    for n, uid in enumerate(sorted(SEEDED)):
        directory.replace(directory.person_dn(uid), "employeeNumber", str(n).encode())
    connector, auth = _over_the_api(
        client, session, sessions, directory, attribute_mapping={"stable_id": "employeeNumber"}
    )
    first = sync(connector)
    assert first.status == "succeeded", first.error
    directory.add_person("twin", extra={"employeeNumber": [b"0"]})  # alice's id
    directory.add_person("newtwin", extra={"employeeNumber": [b"77"]})
    directory.add_person("newtwin2", extra={"employeeNumber": [b"77"]})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    assert run.plan["updates"] == [] and run.plan["creates"] == []
    assert run.plan["revokes"] == []
    for uid in ("alice", "twin", "newtwin", "newtwin2"):
        assert any("stable id" in m for m in _errors_for(run, f"uid={uid},")), uid
    users = linked_users(sessions, connector)
    assert set(users) == SEEDED and users["alice"].status is UserStatus.ACTIVE
    _rendered(client, auth, outcome.run_id)


def test_a_base_dn_that_is_an_alias_is_refused_and_revokes_nobody(
    client, session, sessions, settings, directory, sync
):
    """Searches do not follow aliases: under an alias of ou=people a search finds nobody,
    which read as a complete, empty directory (everyone revoked where thresholds allow). The
    connection test (API and CLI) answers with the run's reason, not `no_people`."""
    connector, auth = _over_the_api(client, session, sessions, directory)
    assert sync(connector).status == "succeeded"
    alias = f"ou=staff,{directory.base}"
    directory.add(
        alias,
        {
            "objectClass": [b"alias", b"extensibleObject"],
            "ou": [b"staff"],
            "aliasedObjectName": [directory.people.encode()],
        },
    )
    moved = client.patch(
        f"/api/v1/directory/connectors/{connector.id}", json={"base_dn": alias}, headers=auth
    )
    assert moved.status_code == 200, moved.json
    outcome = sync(connector)
    assert outcome.status == "failed"
    run = get_run(sessions, outcome.run_id)
    assert run.error_code == "directory_config_error", run.error_code
    assert "is an alias of" in run.error and directory.people in run.error
    users = linked_users(sessions, connector)
    assert set(users) == SEEDED
    assert all(user.status is UserStatus.ACTIVE for user in users.values())
    _rendered(client, auth, outcome.run_id)
    # The connection test names the alias as the run does (it answered no_people).
    tested = client.post(f"/api/v1/directory/connectors/{connector.id}/test", headers=auth)
    assert tested.status_code == 200, tested.json
    assert not tested.json["ok"], tested.json
    assert tested.json["error_code"] == "directory_config_error", tested.json
    assert tested.json["error"] == run.error
    with sessions() as s:
        slug = s.get_one(Organisation, connector.organisation_id).slug
        s.rollback()
    cli = CliRunner(env=settings_env(settings)).invoke(
        main, ["ldap", "test", "--org", slug, "--connector", connector.name, "--json"]
    )
    assert cli.exit_code == 6, cli.output
    assert json.loads(cli.output)["error_code"] == "directory_config_error", cli.output
    assert "is an alias of" in cli.output


@pytest.mark.parametrize(
    ("field", "reason"),
    [("email", "no usable email in noSuchMail"), ("stable_id", "has no noSuchId")],
)
def test_mapped_attributes_the_server_lacks_change_nobody(
    client, session, sessions, directory, sync, field, reason
):
    """The server answers a request for an attribute it does not know with entries without
    it: every entry is reported with the reason, and nobody is revoked or taken off a team."""
    connector, auth = _over_the_api(client, session, sessions, directory)
    assert sync(connector).status == "succeeded"
    name = {"email": "noSuchMail", "stable_id": "noSuchId"}[field]
    changed = client.patch(
        f"/api/v1/directory/connectors/{connector.id}",
        json={"attribute_mapping": {field: name}},
        headers=auth,
    )
    assert changed.status_code == 200, changed.json
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    assert run.plan["revokes"] == [] and run.plan["team_removes"] == []
    for uid in SEEDED:
        assert any(reason in m for m in _errors_for(run, f"uid={uid},")), run.plan["errors"]
    users = linked_users(sessions, connector)
    assert all(user.status is UserStatus.ACTIVE for user in users.values())
    assert team_members(sessions) == {"alice", "bob", "carol"}
    _rendered(client, auth, outcome.run_id)


def test_a_group_of_twenty_thousand_members_reads(client, session, sessions, directory, sync):
    """20,000 member values, most naming nobody the read found (gone, or outside the
    base): the known ones join the team, the rest are nobody."""
    engineering = f"cn=engineering,{directory.groups}"
    values = [f"uid=gone{n},ou=people,{directory.base}".encode() for n in range(20_000)]
    for start in range(0, len(values), 5000):
        directory.add_values(engineering, "member", *values[start : start + 5000])
    connector, auth = _over_the_api(client, session, sessions, directory)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert team_members(sessions) == {"alice", "bob", "carol"}
    _rendered(client, auth, outcome.run_id)


def test_escaped_and_multi_valued_rdns_are_people_and_members(
    client, session, sessions, directory, sync
):
    """A comma, a plus sign (a multi-valued RDN), UTF-8 and a trailing space in RDNs; the
    group names the same entries spelled otherwise (hex escapes, the RDN's other order)."""
    people = directory.people
    comma = directory.add_person("quinn", dn=f"uid=quinn+cn=Quinn\\2C Q,{people}", name="Quinn, Q")
    accented = directory.add_person(
        "jorg", dn=f"cn=J\u00f6rg M\u00fcller,{people}", name="J\u00f6rg M\u00fcller"
    )
    trailing = directory.add_person("trail", dn=f"cn=Trail\\ ,{people}", name="Trail ")
    assert comma and accented and trailing
    spelled = [
        f"cn=Quinn\\, Q+uid=quinn,{people}",
        f"cn=J\\C3\\B6rg M\\C3\\BCller,{people}",
        f"CN=trail\\20,{people}",
    ]
    engineering = f"cn=engineering,{directory.groups}"
    directory.add_values(engineering, "member", *(dn.encode() for dn in spelled))
    connector, auth = _over_the_api(client, session, sessions, directory)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert team_members(sessions) == {"alice", "bob", "carol", "quinn", "jorg", "trail"}
    _rendered(client, auth, outcome.run_id)
    again = sync(connector)
    assert again.status == "succeeded"
    assert again.summary["update"] == 0 and again.summary["team_remove"] == 0


def test_an_entry_refused_at_apply_is_reported_with_its_dn(
    client, session, sessions, directory, sync, monkeypatch
):
    """An admin creates erin's email after the read loaded the emails taken: the plan creates
    erin, the apply refuses her, and the run's apply error names her entry's DN (in the API
    and on the console run page), not only her stable id."""
    connector, auth = _over_the_api(client, session, sessions, directory)
    assert sync(connector).status == "succeeded"
    erin = directory.add_person("erin")
    email = f"erin@{directory.domain}"
    raced: list[str] = []
    reconcile = read._start

    def reconciling(*args: Any, **kwargs: Any) -> Any:
        started = reconcile(*args, **kwargs)
        if not raced:
            with sessions() as s:
                factories.make_user(
                    s, s.get_one(Organisation, connector.organisation_id), email=email
                )
                s.commit()
            raced.append(email)
        return started

    monkeypatch.setattr(read, "_start", reconciling)
    outcome = sync(connector)
    assert raced and outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    refused = run.plan["apply_errors"]
    assert [e["dn"] for e in refused] == [erin], refused
    assert f"{email} exists already" in refused[0]["message"]
    assert refused[0]["external_id"] == directory.entry_uuid(erin)
    shown, page = _rendered(client, auth, outcome.run_id)
    assert shown["plan"]["apply_errors"] == refused
    assert 'id="diff-apply-errors"' in page and f"{erin}: {email} exists already" in page


def _mails_from_description(directory, **spoofs: str) -> None:
    """Mail read from a directoryString attribute (slapd holds mail as IA5String, ASCII
    only; AD's userPrincipalName or a custom attribute holds any text)."""
    for uid in SEEDED:
        directory.replace(directory.person_dn(uid), "description", f"{uid}@corp.example".encode())
    for uid, mail in spoofs.items():
        people = directory.person_dn("x").partition(",")[2]
        directory.add_person(
            uid,
            dn=f"cn={uid.title()} \u202enimda,{people}",
            name=f"{uid.title()} \u202enimda",
            extra={"description": [mail.encode()]},
        )


def test_mails_with_invisible_characters_are_refused_with_their_dn_and_shown_safely(
    client, session, sessions, directory, sync
):
    """A second "alice" whose mail holds a zero-width space, a bidi override or a BOM
    would look like alice everywhere: each entry is reported (by DN) and changes nothing,
    and the console's "Entries not used" names it by its DN, bidi isolated and its invisible
    characters marked."""
    spoofs = {
        "erin": "al\u200bice@corp.example",
        "fay": "\u202ealice@corp.example",
        "gus": "alice@corp.example\ufeff",
    }
    _mails_from_description(directory, **spoofs)
    connector, auth = _over_the_api(
        client, session, sessions, directory, attribute_mapping={"email": "description"}
    )
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    run = get_run(sessions, outcome.run_id)
    assert set(linked_users(sessions, connector)) == SEEDED
    for uid in spoofs:
        assert any("invisible" in m for m in _errors_for(run, f"cn={uid.title()} ")), uid
    _, page = _rendered(client, auth, outcome.run_id)
    section = page.partition('id="diff-errors"')[2].partition("</section>")[0]
    people = directory.person_dn("x").partition(",")[2]
    for uid in spoofs:
        shown_dn = f"cn={uid.title()} &lt;U+202E&gt;nimda,{people}"
        assert f'<code class="dn"><bdi>{shown_dn}</bdi></code>: <bdi>' in section, section
    assert "\u202e" not in page and "\u200b" not in page and "\ufeff" not in page
    again = sync(connector)
    assert again.status == "succeeded" and again.summary["create"] == 0


def test_a_name_with_bidi_characters_is_applied_and_shown_marked(
    client, session, sessions, directory, sync
):
    """Names are not identifiers: a right-to-left override in cn is kept as sent (the person
    is created) and the console shows it marked and isolated."""
    directory.add_person("frank", name="Frank \u202eevil\u202c")
    connector, auth = _over_the_api(client, session, sessions, directory)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    frank = linked_users(sessions, connector)["frank"]
    assert frank.name == "Frank \u202eevil\u202c"
    _rendered(client, auth, outcome.run_id)  # signs the client in
    page = client.get(f"/console/people/{frank.id}").get_data(as_text=True)
    assert "<bdi>Frank &lt;U+202E&gt;evil&lt;U+202C&gt;</bdi>" in page
    assert "\u202e" not in page
