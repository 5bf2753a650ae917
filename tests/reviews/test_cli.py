"""The command line: revoke --dry-run, reviews and hooks."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli.main import main
from models import outbox
from models.entities import AuditEvent, Budget, NotificationHook, User, VirtualApiKey
from models.enums import UserStatus
from tests.reviews.conftest import build_leaver, findings_by_kind, revoke_and_review
from tests.support.worker import settings_env


@pytest.fixture
def run(settings):
    runner = CliRunner(env=settings_env(settings))

    def invoke(*args):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result

    return invoke


def test_revoke_dry_run_shows_the_blast_radius_and_changes_nothing(session, run):
    world = build_leaver(session)
    session.commit()
    audits = session.scalar(select(func.count(AuditEvent.id)))
    session.commit()

    text = run("users", "revoke", "--org", world.org.slug, world.person.email, "--dry-run")
    as_json = run(
        "users", "revoke", "--org", world.org.slug, str(world.person.id), "--dry-run", "--json"
    )

    assert text.exit_code == 0, text.output
    assert "would" in text.output and "left without a manager" in text.output
    data = json.loads(as_json.output)
    assert len(data["keys"]) == 2 and len(data["team_keys"]) == 1
    session.expire_all()
    assert session.get(User, world.person.id).status is UserStatus.ACTIVE
    assert session.scalar(select(func.count(AuditEvent.id))) == audits
    assert not any(k.revoked for k in session.scalars(select(VirtualApiKey)))


def test_revoke_without_dry_run_revokes(session, run):
    world = build_leaver(session)
    session.commit()
    result = run(
        "users", "revoke", "--org", world.org.slug, world.person.email, "--reason", "left", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "REVOKED"
    missing = run("users", "revoke", "--org", world.org.slug, "nobody@example.com")
    assert missing.exit_code != 0 and "no user" in missing.output


def test_reviews_list_show_resolve_reassign_and_acknowledge(session, run):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    kinds = findings_by_kind(review)
    budget, quota = kinds["budget"][0], kinds["quota"][0]
    outbox.take_new_messages(session)
    session.commit()
    org = world.org.slug

    listed = json.loads(run("reviews", "list", "--org", org, "--status", "open", "--json").output)
    assert [r["id"] for r in listed] == [str(review.id)]
    shown = run("reviews", "show", "--org", org, str(review.id))
    assert "team_key" in shown.output and "hold_for_review" in shown.output

    moved = run("reviews", "reassign", "--org", org, str(budget.id), "--to-team", "Team A")
    assert moved.exit_code == 0, moved.output
    resolved = run("reviews", "dismiss", "--org", org, str(quota.id), "--note", "unused")
    assert "dismissed" in resolved.output
    twice = run("reviews", "dismiss", "--org", org, str(quota.id))
    assert twice.exit_code != 0 and "already" in twice.output
    acked = run("reviews", "acknowledge", "--org", org, str(review.id), "--json")
    assert json.loads(acked.output)["acknowledged"] >= 1
    bad = run("reviews", "show", "--org", org, "not-a-uuid")
    assert bad.exit_code != 0 and "UUID" in bad.output

    sweep = json.loads(run("reviews", "sweep", "--org", org, "--json").output)
    assert sweep == {"opened": [], "updated": [], "closed": []}
    session.expire_all()
    assert session.scalars(select(Budget)).one().owner_id == world.team_a.id


def test_hooks_add_list_rotate_disable_remove(session, run, settings):
    world = build_leaver(session)
    session.commit()
    org = world.org.slug

    added = run(
        "hooks",
        "add",
        "--org",
        org,
        "--name",
        "siem",
        "--kind",
        "webhook",
        "--target",
        "http://127.0.0.1:9/x",
        "--event",
        "review.*",
        "--json",
    )
    assert added.exit_code == 0, added.output
    hook = json.loads(added.output)
    assert hook["signing_secret"].startswith("whsec_") and hook["events"] == ["review.*"]
    refused = run(
        "hooks",
        "add",
        "--org",
        org,
        "--name",
        "x",
        "--kind",
        "webhook",
        "--target",
        "http://10.0.0.1/x",
    )
    assert refused.exit_code != 0 and "private" in refused.output
    rotated = run("hooks", "rotate-secret", "--org", org, hook["id"])
    assert rotated.output.strip().startswith("whsec_")
    assert run("hooks", "disable", "--org", org, hook["id"]).exit_code == 0
    listed = run("hooks", "list", "--org", org)
    assert "OFF" in listed.output
    assert "no deliveries" in run("hooks", "deliveries", "--org", org, hook["id"]).output
    assert run("hooks", "remove", "--org", org, hook["id"]).exit_code == 0
    session.expire_all()
    assert session.scalar(select(func.count(NotificationHook.id))) == 0


def test_reviews_show_pages_the_findings_as_the_api_does(session, run):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    every = len(review.findings)
    assert every >= 5
    session.commit()
    org, review_id = world.org.slug, str(review.id)

    def page(*args: str) -> dict:
        shown = run("reviews", "show", "--org", org, review_id, "--limit", "2", *args, "--json")
        assert shown.exit_code == 0, shown.output
        return json.loads(shown.output)

    pages = [page()]
    while pages[-1]["findings_next_cursor"]:
        pages.append(page("--cursor", pages[-1]["findings_next_cursor"]))
    ids = [finding["id"] for shown in pages for finding in shown["findings"]]
    assert len(ids) == every and len(set(ids)) == every  # each finding once, none left out
    assert all(len(shown["findings"]) == 2 for shown in pages[:-1])
    assert pages[0]["findings_previous_cursor"] is None
    back = page("--before", pages[1]["findings_previous_cursor"])
    assert [f["id"] for f in back["findings"]] == [f["id"] for f in pages[0]["findings"]]
    assert back["findings_previous_cursor"] is None and back["findings_next_cursor"]

    text = run("reviews", "show", "--org", org, review_id, "--limit", "2").output
    assert f"next page: --cursor {pages[0]['findings_next_cursor']}" in text
    bad = run("reviews", "show", "--org", org, review_id, "--cursor", str(world.person.id))
    assert bad.exit_code != 0 and "cursor is not a finding of this review" in bad.output
