"""`odock-sync odock import`: a JSONL first load, which reports unusable lines and goes on."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import event, select

from models.actions import odock_reconcile
from models.entities import AuditEvent, Budget, Quota, UsageRecord, VirtualApiKey
from tests.odock_inbound.conftest import bridge, counts, key_body


def lines_of(*objects) -> list[bytes]:
    return [o if isinstance(o, bytes) else json.dumps(o).encode() for o in objects]


def test_an_import_loads_every_kind_and_reports_the_lines_it_could_not_use(
    bridged, session, engine
):
    by_email, newer, older = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    owner_by_email = key_body(version=1, type="USER", owner_email=bridged.owner.email)
    owner_by_email.pop("owner_user_id")
    budget_id, quota_id = uuid.uuid4(), uuid.uuid4()
    lines = lines_of(
        {"kind": "key", "id": str(by_email), **owner_by_email},
        {"kind": "key", "id": str(newer), **key_body(bridged.owner, version=2)},
        {"kind": "key", "id": str(newer), **key_body(bridged.other, version=1)},
        {
            "kind": "budget",
            "id": str(budget_id),
            "owner_type": "TEAM",
            "owner_id": str(bridged.team.id),
            "name": "b",
            "amount": "5",
            "version": 1,
        },
        {
            "kind": "quota",
            "id": str(quota_id),
            "owner_type": "ORG",
            "name": "q",
            "limit": 100,
            "version": 1,
        },
        {
            "kind": "usage",
            "id": "u1",
            "occurred_at": "2026-12-01T10:00:00Z",
            "api_key_id": str(by_email),
            "requests": 3,
        },
        b"{not json",
        b"",
        {"kind": "secret", "id": str(older)},
        {"kind": "key", "id": str(older), **key_body(bridged.owner, version="1")},
        {"kind": "key", "id": str(older), **{**owner_by_email, "owner_email": "ghost@x.test"}},
    )

    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)

    assert run.status == "succeeded"
    assert run.summary["key"]["created"] == 2 and run.summary["key"]["rejected"] == 1
    assert run.summary["budget"]["created"] == 1 and run.summary["quota"]["created"] == 1
    assert run.summary["usage"] == {"accepted": 1, "duplicates": 0}
    problems = run.summary["problems"]
    assert problems["count"] == 3
    assert [p.split(":")[0] for p in problems["first"]] == ["line 7", "line 9", "line 10"]
    assert "ghost@x.test" in run.summary["key"]["ids"]["rejected"][0]
    assert session.get_one(VirtualApiKey, by_email).owner_user_id == bridged.owner.id
    assert session.get_one(VirtualApiKey, newer).version == 2  # the newer line won
    assert session.get(VirtualApiKey, older) is None
    assert session.get_one(Budget, budget_id).owner_id == bridged.team.id
    assert session.get_one(Quota, quota_id).owner_id == bridged.org.id
    assert session.scalars(select(UsageRecord.requests)).all() == [3]
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "odock.import.finished"))
    session.rollback()

    before = counts(session)
    again = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)
    assert again.summary["key"]["created"] == 0 and again.summary["key"]["unchanged"] == 2
    assert again.summary["usage"] == {"accepted": 0, "duplicates": 1}
    after = counts(session)
    assert {t: n for t, n in after.items() if t != "audit_events"} == {
        t: n for t, n in before.items() if t != "audit_events"
    }


def test_an_import_never_passes_a_tombstone_and_never_deletes(bridged, session, engine):
    buried, kept = uuid.uuid4(), uuid.uuid4()
    bridged.put("keys", kept, key_body(bridged.owner, version=1))
    bridged.delete("keys", buried, 5)
    lines = lines_of({"kind": "key", "id": str(buried), **key_body(bridged.owner, version=4)})

    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)

    assert run.summary["key"]["unchanged"] == 1 and run.summary["key"]["deleted"] == 0
    assert set(session.scalars(select(VirtualApiKey.id))) == {kept}


def test_a_delete_committed_while_an_import_runs_is_not_passed_by_an_older_line(
    bridged, session, engine
):
    """An organisation with no tombstone when the import starts; the management plane deletes
    a key (version 5) while the import reads its lines, then a line holds that key at version
    4. The import looked for tombstones once, at its start, and brought the key back."""
    buried, kept = uuid.uuid4(), uuid.uuid4()

    def lines():
        yield from lines_of({"kind": "key", "id": str(kept), **key_body(version=1)})
        assert bridged.delete("keys", buried, 5).status_code == 204
        yield from lines_of({"kind": "key", "id": str(buried), **key_body(version=4)})

    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines())

    assert run.summary["key"]["created"] == 1 and run.summary["key"]["unchanged"] == 1
    assert set(session.scalars(select(VirtualApiKey.id))) == {kept}


def test_the_cli_imports_a_file(run, bridged, tmp_path, session):
    key_id = uuid.uuid4()
    path = tmp_path / "odock.jsonl"
    path.write_bytes(
        b"\n".join(lines_of({"kind": "key", "id": str(key_id), **key_body(bridged.owner)}, b"[1]"))
    )

    result = run("odock", "import", "--org", bridged.org.slug, str(path))

    assert "keys: 1 seen, 1 created" in result.output
    assert "1 unusable lines" in result.output and "line 2" in result.output
    assert session.get(VirtualApiKey, key_id) is not None


def test_owners_that_are_another_organisations_keys_are_asked_once_for_the_whole_chunk(
    bridged, session, settings, engine
):
    """Thirty budgets, ten of them owned by three keys of another organisation: those ten are
    rejected by id, the twenty naming keys not known here yet are loaded, and the keys table
    is read once for all of them, not once per row."""
    elsewhere = bridge(session, settings, bridged.client)
    theirs = [uuid.uuid4() for _ in range(3)]
    for key_id in theirs:
        assert elsewhere.put("keys", key_id, key_body(elsewhere.owner)).status_code == 200
    owners = [theirs[n % 3] for n in range(10)] + [uuid.uuid4() for _ in range(20)]
    budget_ids = [uuid.uuid4() for _ in owners]
    lines = lines_of(
        *(
            {
                "kind": "budget",
                "id": str(budget_id),
                "owner_type": "APIKEY",
                "owner_id": str(owner),
                "name": "b",
                "amount": "5",
                "version": 1,
            }
            for budget_id, owner in zip(budget_ids, owners, strict=True)
        )
    )
    statements: list[str] = []

    def keep(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    try:
        run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)
    finally:
        event.remove(engine, "before_cursor_execute", keep)

    counts = run.summary["budget"]
    assert (counts["created"], counts["rejected"]) == (20, 10), counts
    assert sorted(counts["ids"]["rejected"]) == sorted(
        f"{budget_id}: no key {owner} in this organisation"
        for budget_id, owner in zip(budget_ids[:10], owners[:10], strict=True)
    )
    assert len([s for s in statements if "virtual_api_keys" in s]) == 1, statements
    held = set(session.scalars(select(Budget.id).where(Budget.organisation_id == bridged.org.id)))
    assert held == set(budget_ids[10:])


def test_an_import_refuses_a_number_in_other_than_ascii_digits(bridged, session, engine):
    """A line whose amount or cost is "\uff15" is a problem line, not a budget of 5."""
    budget_id = uuid.uuid4()
    lines = lines_of(
        {
            "kind": "budget",
            "id": str(budget_id),
            "owner_type": "ORG",
            "name": "b",
            "amount": "\uff15",
            "version": 1,
        },
        {"kind": "usage", "id": "u1", "occurred_at": "2026-12-01T10:00:00Z", "cost": " 5"},
    )

    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)

    problems = run.summary["problems"]
    assert problems["count"] == 2, problems
    assert [p.split(":")[0] for p in problems["first"]] == ["line 1", "line 2"]
    assert session.get(Budget, budget_id) is None
    assert session.scalars(select(UsageRecord)).all() == []


def test_an_import_reports_a_nul_in_any_text_and_loads_the_rest(bridged, session, engine):
    """A NUL read from the file reached PostgreSQL (the key's COPY, the usage's insert), which
    refused it: the import died with its run unfinished (SQLite stores it)."""
    odd, fine = uuid.uuid4(), uuid.uuid4()
    lines = lines_of(
        {"kind": "key", "id": str(odd), **key_body(bridged.owner, name="ci\x00bot")},
        {"kind": "key", "id": str(fine), **key_body(bridged.owner)},
        {"kind": "usage", "id": "u\x001", "occurred_at": "2026-12-01T10:00:00Z"},
        {"kind": "usage", "id": "u2", "occurred_at": "2026-12-01T10:00:00Z", "model": "m\x00"},
    )

    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=lines)

    problems = run.summary["problems"]
    assert [p.split(":")[0] for p in problems["first"]] == ["line 1", "line 3", "line 4"]
    assert all("NUL" in p for p in problems["first"]), problems
    assert session.get(VirtualApiKey, fine) is not None and session.get(VirtualApiKey, odd) is None
    assert session.scalars(select(UsageRecord)).all() == []
