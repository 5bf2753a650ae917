"""Upcoming departures in the console: who leaves within 30 days (not later, not already
gone), when, who set the date and what they hold, each linked to the blast-radius preview;
managers see their teams' people only. In headless Chromium: a screenshot, and no serious or
critical axe-core violation."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest

from models.actions import access_end, lifecycle
from models.actor import Actor
from models.base import utcnow
from models.enums import KeyType, Source
from tests.console.conftest import sign_in
from tests.support import factories as f
from tests.support.browser import accessibility_violations, screenshot_dir, serving

SCIM = Actor(Source.SCIM, "okta")
LDAP = Actor(Source.LDAP, "ldap")


@pytest.fixture
def leaving(session, org):
    """The member leaves in ten days (set by SCIM) holding keys and a budget; the outsider in
    twenty (LDAP); one person in forty days and one already revoked are not upcoming."""
    now = utcnow().replace(microsecond=0)
    f.make_key(session, org.org, owner=org.member)
    f.make_key(session, org.org, team=org.team, created_by=org.member)
    f.make_key(session, org.org, key_type=KeyType.ORGANISATION, created_by=org.member)
    f.make_budget(session, org.org, org.member)
    later = f.make_user(session, org.org, email="lou@acme.example")
    gone = f.make_user(session, org.org, email="gus@acme.example")
    dates = {
        org.member: (now + timedelta(days=10), SCIM),
        org.outsider: (now + timedelta(days=20), LDAP),
        later: (now + timedelta(days=40), SCIM),
        gone: (now + timedelta(days=5), SCIM),
    }
    for person, (ends, actor) in dates.items():
        access_end.set_access_end(session, user=person, ends_at=ends, actor=actor)
    lifecycle.revoke(session, user=gone, actor=f.SETUP)
    session.commit()
    return dates


def test_the_admin_sees_who_leaves_within_30_days_and_what_they_hold(client, org, leaving):
    sign_in(client, org.admin_token)
    answer = client.get("/console/departures")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert html.index("mia@acme.example") < html.index("otto@acme.example")  # soonest first
    assert "lou@acme.example" not in html and "gus@acme.example" not in html
    member_row = html[html.index(f'id="departure-{org.member.id}"') :]
    member_row = member_row[: member_row.index("</tr>")]
    ends = leaving[org.member][0].strftime("%Y-%m-%d %H:%M")
    assert ends in member_row and '<td class="source">scim</td>' in member_row
    assert '<td class="own-keys">1</td>' in member_row
    assert "2 need a new owner" in member_row and '<td class="owned">1</td>' in member_row
    assert f'href="/console/people/{org.member.id}"' in member_row
    assert "Departures" in client.get("/console").get_data(as_text=True)  # the nav link


def test_a_manager_sees_only_their_teams_people(client, org, leaving):
    sign_in(client, org.manager_token)
    html = client.get("/console/departures").get_data(as_text=True)
    assert "mia@acme.example" in html and "otto@acme.example" not in html


def test_nobody_leaving_says_so(client, org):
    sign_in(client, org.admin_token)
    html = client.get("/console/departures").get_data(as_text=True)
    assert 'id="no-departures"' in html


@pytest.mark.slow
def test_departures_page_in_a_browser(app, org, leaving, chromium):
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.goto(f"{base}/console/sign-in")
        page.fill("#token", org.admin_token)
        with page.expect_navigation():
            page.click("#sign-in")
        with page.expect_navigation():
            page.click("nav >> text=Departures")
        assert page.locator("#departures tbody tr").count() == 2
        page.screenshot(path=str(screenshot_dir() / "departures.png"), full_page=True)
        assert accessibility_violations(page) == []
        with page.expect_navigation():
            page.click("#departures >> text=mia@acme.example")
        assert page.url.endswith(f"/console/people/{org.member.id}")
        context.close()


def test_the_departures_page_is_paged(client, org, leaving):
    sign_in(client, org.admin_token)
    first = client.get("/console/departures?limit=1").get_data(as_text=True)
    assert "mia@acme.example" in first and "otto@acme.example" not in first
    assert "2 people leave within 30 days (showing 1 to 1)" in first
    assert 'id="departures-previous"' not in first
    link = re.search(r'id="departures-next" rel="next" href="([^"]+)"', first)
    assert link is not None
    second = client.get(unescape(link.group(1))).get_data(as_text=True)
    assert "otto@acme.example" in second and "mia@acme.example" not in second
    assert 'id="departures-next"' not in second
    back = re.search(r'id="departures-previous" rel="prev" href="([^"]+)"', second)
    assert back is not None
    assert "mia@acme.example" in client.get(unescape(back.group(1))).get_data(as_text=True)
    assert client.get("/console/departures?limit=501").status_code == 400
