"""Key recertification in the console: open campaigns with their progress, and the findings
a manager or admin may answer, decided by the same operation as the API.

The browser test saves recertification.png and recertification-campaign.png (see
tests/console/test_browser.py for where)."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest
from sqlalchemy import select

from models.actions import recertification
from models.entities import AuditEvent, ReviewFinding, VirtualApiKey
from models.enums import FindingState
from tests.console.conftest import csrf_of, sign_in
from tests.recertification.conftest import build_keys, configure
from tests.support import factories as f
from tests.support.browser import accessibility_violations, screenshot_dir, serving


@pytest.fixture
def campaign(session):
    keys = build_keys(session)
    configure(session, keys.org)
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    tokens = {
        name: f.admin_token(session, keys.org, person)
        for name, person in (("admin", keys.admin), ("manager", keys.manager))
    }
    session.commit()
    return keys, opened.campaign.id, tokens


def _finding_id(session, key_id) -> uuid.UUID:
    return session.scalars(select(ReviewFinding.id).where(ReviewFinding.subject_id == key_id)).one()


def test_a_manager_sees_and_answers_only_their_teams_keys(client, session, campaign):
    keys, campaign_id, tokens = campaign
    moved, spend = _finding_id(session, keys.moved.id), _finding_id(session, keys.spend.id)
    session.rollback()  # SQLite: let the app take the write lock
    sign_in(client, tokens["manager"])
    listing = client.get("/console/recertification").get_data(as_text=True)
    assert f"campaign-{campaign_id}" in listing and "Answered 0 of 4 keys" in listing
    shown = client.get(f"/console/recertification/{campaign_id}").get_data(as_text=True)
    assert f"finding-{moved}" in shown and f"finding-{spend}" not in shown  # the moved key's team

    csrf = csrf_of(shown)
    refused = client.post(
        f"/console/recertification/findings/{spend}/decide",
        data={"csrf": csrf, "decision": "revoke"},
    )
    assert refused.status_code == 404
    no_reason = client.post(
        f"/console/recertification/findings/{moved}/decide",
        data={"csrf": csrf, "decision": "keep"},
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.get_data(as_text=True)
    kept = client.post(
        f"/console/recertification/findings/{moved}/decide",
        data={"csrf": csrf, "decision": "keep", "reason": "team's nightly job"},
    )
    assert kept.status_code == 303
    assert "Kept" in client.get(kept.location).get_data(as_text=True)
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "recertification.decided")
    ).one()
    assert event.actor == keys.manager.email
    assert event.after["decision"] == "keep" and event.after["reason"] == "team's nightly job"


@pytest.mark.slow
def test_the_campaign_page_in_a_browser(app, session, sessions, campaign, chromium):
    keys, campaign_id, tokens = campaign
    unused_key, admin_email = keys.unused.id, keys.admin.email
    unused = _finding_id(session, unused_key)
    spend = _finding_id(session, keys.spend.id)
    session.rollback()
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before Revoke
        page.goto(f"{base}/console/sign-in")
        page.fill("#token", tokens["admin"])
        with page.expect_navigation():
            page.click("#sign-in")
        with page.expect_navigation():
            page.click("text=Key recertification")
        assert page.locator(f"#progress-{campaign_id}").get_attribute("value") == "0"
        _look(page, "recertification")

        page.click(f"#campaign-{campaign_id} h2 a")
        page.wait_for_url(f"**/console/recertification/{campaign_id}")
        card = page.locator(f"#finding-{spend}")
        card.locator("input[name=reason]").fill("billing export")
        with page.expect_navigation():
            card.locator("button.keep").click()
        assert "Kept" in page.locator("#recert-notice").inner_text()
        assert page.locator(f"#finding-{spend}").count() == 0
        with page.expect_navigation():
            page.locator(f"#finding-{unused} button.revoke").click()
        assert "gateway" in page.locator(f"#finding-{unused} .finding-state").inner_text()
        _look(page, "recertification-campaign")
        context.close()

    with sessions() as check:
        assert check.get_one(VirtualApiKey, unused_key).revoked
        kept = check.get_one(ReviewFinding, spend)
        assert kept.state is FindingState.RESOLVED and kept.resolution == "keep: billing export"
        actors = set(
            check.scalars(
                select(AuditEvent.actor).where(AuditEvent.action == "recertification.decided")
            )
        )
        assert actors == {admin_email}


def _look(page, name: str) -> None:
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)
    assert accessibility_violations(page) == [], name


def test_the_campaign_page_links_to_the_next_and_previous_findings(client, session, campaign):
    _, campaign_id, tokens = campaign
    session.rollback()  # SQLite: let the app take the write lock
    sign_in(client, tokens["admin"])
    base = f"/console/recertification/{campaign_id}"

    first = client.get(f"{base}?limit=3").get_data(as_text=True)
    assert first.count('class="finding state-open"') == 3
    assert "Showing 1 to 3 of the 4" in first and 'id="findings-previous"' not in first
    link = re.search(r'id="findings-next" rel="next" href="([^"]+)"', first)
    assert link is not None
    second = client.get(unescape(link.group(1))).get_data(as_text=True)
    assert second.count('class="finding state-open"') == 1 and "Showing 4 to 4 of the 4" in second
    assert 'id="findings-next"' not in second
    back = re.search(r'id="findings-previous" rel="prev" href="([^"]+)"', second)
    assert back is not None
    assert (
        client.get(unescape(back.group(1)))
        .get_data(as_text=True)
        .count('class="finding state-open"')
        == 3
    )
    assert client.get(f"{base}?offset=-1").status_code == 400
