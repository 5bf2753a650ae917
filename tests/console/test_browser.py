"""The console in headless Chromium (Playwright) against a live server, a real slapd, and the
database of the run: sign in, approve a quarantined directory run and see who was revoked,
resolve a review finding, filter the audit log; axe-core on every page.

Screenshots of every page are saved to build/console-screenshots/ in the checkout (or to
$CONSOLE_SCREENSHOT_DIR): sign-in.png, overview.png, runs.png, run-quarantined.png,
run-approved.png, person-revoked.png, person-preview.png, reviews.png, review.png,
audit.png, audit-bad-filter.png, deliveries.png.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
from sqlalchemy import select

from models.actions import lifecycle, reviews
from models.entities import AuditEvent, DirectorySyncRun, ReviewFinding, User
from models.enums import FindingState, Role, SyncRunStatus, UserStatus
from tests.ldap.conftest import linked_users
from tests.support import factories as f
from tests.support.browser import accessibility_violations, screenshot_dir, serving
from tests.support.relay import wait_relaying

pytestmark = pytest.mark.slow


def _remove(directory, uid: str) -> None:
    dn = directory.person_dn(uid)
    for group in ("engineering", "admins"):
        with contextlib.suppress(Exception):
            directory.delete_values(f"cn={group},{directory.groups}", "member", dn.encode())
    directory.delete(dn)


def _arrange(session, sessions, make_connector, sync, directory):
    """A synced directory whose next run is quarantined (bob is gone), an admin with a token,
    and a leaver whose review has open findings."""
    connector = make_connector(threshold_percent=10)
    assert sync(connector).status == "succeeded"
    org = connector.organisation_id
    organisation = session.get_one(type(f.make_org(session)), org)  # the connector's organisation
    admin = f.make_user(session, organisation, role=Role.ORG_ADMIN, email="ada@acme.example")
    token = f.admin_token(session, organisation, admin)
    leaver = f.make_user(session, organisation, email="lee@acme.example", name="Lee Leaver")
    f.make_key(session, organisation, owner=leaver)
    f.make_budget(session, organisation, leaver)
    session.flush()
    revocation = lifecycle.revoke(session, user=leaver, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
    _remove(directory, "bob")
    held = sync(connector)
    assert held.status == "quarantined"
    return connector, token, review.id, uuid.UUID(held.run_id)


def _look(page, name: str) -> None:
    """A screenshot for people, and no serious or critical accessibility violation."""
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)
    assert accessibility_violations(page) == [], name


def test_sign_in_approve_resolve_filter(
    app, session, sessions, make_connector, sync, directory, chromium, worker
):
    connector, token, review_id, run_id = _arrange(
        session, sessions, make_connector, sync, directory
    )
    bob = linked_users(sessions, connector)["bob"]
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before Approve

        # Sign in: the admin token is exchanged for a session once.
        page.goto(f"{base}/console")
        assert page.url.endswith("/console/sign-in")
        _look(page, "sign-in")
        page.fill("#token", token)
        with page.expect_navigation():
            page.click("#sign-in")
        assert page.locator("#signed-in-as").inner_text() == "ada@acme.example"
        assert page.locator("#quarantined li").count() == 1
        _look(page, "overview")
        assert page.locator(".chart svg rect").count() == 60  # two charts of 30 days

        with page.expect_navigation():
            page.click("text=Directory runs")
        _look(page, "runs")

        # The held run: why, and who its plan would revoke.
        page.goto(f"{base}/console/runs/{run_id}")
        assert "more than 10%" in page.locator("#held-reason").inner_text()
        assert bob.email in page.locator("#diff-revoked").inner_text()
        _look(page, "run-quarantined")
        with page.expect_navigation():
            page.click("#approve")  # a form submission: the next page replaces this one
        assert page.locator("#run-status").inner_text() in ("approving", "approved")
        assert "a worker re-checks the plan" in page.locator("#notice").inner_text()

        def applied() -> bool:  # the worker re-reads the directory and applies the plan
            page.reload()
            return page.locator("#run-status").inner_text() == "approved"

        wait_relaying(applied, interval=0.5, what="the worker to apply the approval")
        assert bob.email in page.locator("#diff-revoked").inner_text()
        _look(page, "run-approved")
        with page.expect_navigation():
            page.click(f"#diff-revoked >> text={bob.email}")
        assert page.locator("#person-status").inner_text() == "REVOKED"
        _look(page, "person-revoked")

        # A colleague still here: the blast radius of revoking them.
        alice = linked_users(sessions, connector)["alice"]
        page.goto(f"{base}/console/people/{alice.id}")
        assert page.locator("#revoke").is_visible()
        _look(page, "person-preview")

        # Reviews: resolve one finding of the leaver's review, with a note.
        with page.expect_navigation():
            page.click("text=Reviews")
        _look(page, "reviews")
        page.goto(f"{base}/console/reviews/{review_id}")
        first = page.locator("article.finding.state-open").first
        finding_id = uuid.UUID(first.get_attribute("id").removeprefix("finding-"))
        first.locator("input[name=note]").fill("handled in the console")
        with page.expect_navigation():
            first.locator("button.resolve").click()
        assert "resolved" in page.locator("#notice").inner_text()
        assert page.locator(f"#finding-{finding_id} .finding-state").inner_text() == "resolved"
        _look(page, "review")

        # The audit log, filtered by action; then a filter it cannot read.
        with page.expect_navigation():
            page.click("text=Audit log")
        page.fill("#f-action", "directory_sync.*")
        with page.expect_navigation():
            page.click("#filter")
        actions = page.locator("#events td.action").all_inner_texts()
        assert set(actions) == {
            "directory_sync.quarantined",
            "directory_sync.approval_requested",
            "directory_sync.approved",
        }
        _look(page, "audit")
        page.fill("#f-since", "last tuesday")
        with page.expect_navigation():
            page.click("#filter")
        assert "since must be an ISO 8601 time" in page.locator("#filter-error").inner_text()
        _look(page, "audit-bad-filter")
        with page.expect_navigation():
            page.click("text=Deliveries")
        _look(page, "deliveries")
        context.close()

    with sessions() as s:
        assert s.get_one(User, bob.id).status is UserStatus.REVOKED
        run = s.get_one(DirectorySyncRun, run_id)
        assert run.status is SyncRunStatus.APPROVED and run.decided_by == "ada@acme.example"
        finding = s.get_one(ReviewFinding, finding_id)
        assert finding.state is FindingState.RESOLVED
        assert finding.resolution == "handled in the console"
        actors = {
            e.action: e.actor
            for e in s.scalars(
                select(AuditEvent).where(
                    AuditEvent.action.in_(["directory_sync.approved", "review.finding_resolved"])
                )
            )
        }
        assert actors == {
            "directory_sync.approved": "ada@acme.example",
            "review.finding_resolved": "ada@acme.example",
        }
