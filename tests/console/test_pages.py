"""The console's pages and actions through the test client: who sees what (the API's rules),
actions audited as the signed-in person, and bad input answered on the page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from models.actions import lifecycle, reviews
from models.actor import Actor
from models.base import utcnow
from models.entities import AuditEvent, ReviewFinding, Revocation, RevocationReview, User
from models.enums import FindingState, Source, UserStatus
from models.queries.revocation_stats import revocations_per_day, time_to_kill_per_day
from tests.console.conftest import csrf_of, sign_in
from tests.support import factories as f


def _review_of(session, person: User) -> RevocationReview:
    revocation = lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
    return review


@pytest.fixture
def reviewed(session, org):
    """The member (in the manager's team) and the outsider revoked, each with a key."""
    for person in (org.member, org.outsider):
        f.make_key(session, org.org, owner=person)
    session.flush()
    return {person.email: _review_of(session, person) for person in (org.member, org.outsider)}


def test_a_manager_sees_only_their_teams_and_no_admin_page(client, org, reviewed):
    sign_in(client, org.manager_token)
    for path in ("/console/runs", "/console/audit"):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "needs the Organisation Admin role" in answer.get_data(as_text=True)
    listed = client.get("/console/reviews").get_data(as_text=True)
    assert org.member.email in listed and org.outsider.email not in listed
    outsider_review = reviewed[org.outsider.email]
    assert client.get(f"/console/reviews/{outsider_review.id}").status_code == 404
    assert client.get(f"/console/people/{org.outsider.id}").status_code == 404
    member_page = client.get(f"/console/people/{org.member.id}").get_data(as_text=True)
    assert 'id="revoke"' not in member_page
    overview = client.get("/console").get_data(as_text=True)
    assert 'id="sources"' not in overview and "Directory runs" not in overview


def test_revoke_from_the_blast_radius_page_as_the_admin(client, org, session, sessions):
    f.make_key(session, org.org, owner=org.member).name = "mia's laptop key"
    session.commit()
    sign_in(client, org.admin_token)
    preview = client.get(f"/console/people/{org.member.id}").get_data(as_text=True)
    assert "mia&#39;s laptop key" in preview and "Research" in preview
    answer = client.post(
        f"/console/people/{org.member.id}/revoke",
        data={"csrf": csrf_of(preview), "reason": "left the company"},
    )
    assert answer.status_code == 303 and "done=revoked" in answer.headers["Location"]
    with sessions() as s:
        assert s.get_one(User, org.member.id).status is UserStatus.REVOKED
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.revoked"))
        assert (event.actor, event.actor_user_id) == ("ada@acme.example", org.admin.id)
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Revoked: their keys are being disabled" in shown and 'id="revoke"' not in shown


def test_an_admin_keeps_out_someone_a_source_revoked(client, org, session, sessions):
    """The console's door to the pin the API and the CLI have: a person SCIM revoked, whom
    SCIM alone could bring back, is kept out by the admin."""
    member = session.get_one(User, org.member.id)
    lifecycle.set_active(session, user=member, active=False, actor=Actor(Source.SCIM, "scim"))
    session.commit()
    sign_in(client, org.admin_token)
    page = client.get(f"/console/people/{org.member.id}").get_data(as_text=True)
    assert 'id="revoke"' in page and "Keep mia@acme.example out" in page
    answer = client.post(
        f"/console/people/{org.member.id}/revoke",
        data={"csrf": csrf_of(page), "reason": "left the company"},
    )
    assert answer.status_code == 303 and "done=kept_out" in answer.headers["Location"]
    with sessions() as s:
        revocation = lifecycle.latest_revocation(s, org.member.id)
        assert lifecycle.standing_sources(revocation) == [Source.SCIM, Source.ADMIN]
        joined = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.revocation_joined"))
        assert joined.actor_user_id == org.admin.id
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Kept out: only an admin" in shown and 'id="revoke"' not in shown


def _decided(sessions) -> tuple[list[tuple[str, ...]], ...]:
    """What a console action decides: statuses, findings' states, events by a person. (Not
    every column: the run's worker still records the gateway's answers on the findings.)"""
    with sessions() as s:
        users = sorted((str(u.id), u.status.value, u.role.value) for u in s.scalars(select(User)))
        findings = sorted(
            (str(x.id), x.state.value, str(x.resolution), str(x.acknowledged_at))
            for x in s.scalars(select(ReviewFinding))
        )
        events = sorted(
            (e.action, str(e.target_id))
            for e in s.scalars(select(AuditEvent).where(AuditEvent.actor_user_id.is_not(None)))
        )
        s.rollback()
    return users, findings, events


def test_bad_input_is_a_page_that_says_so_and_changes_nothing(client, org, reviewed, sessions):
    sign_in(client, org.admin_token)
    review = reviewed[org.member.email]
    page = client.get(f"/console/reviews/{review.id}").get_data(as_text=True)
    csrf = csrf_of(page)
    finding = review.findings[0]
    before = _decided(sessions)
    cases = [
        (f"/console/people/{org.admin.id}/revoke", {}, 403, "cannot change your own role"),
        (f"/console/findings/{finding.id}/reassign", {"user_id": "nobody"}, 400, "user_id"),
        (f"/console/findings/{finding.id}/reassign", {}, 400, "exactly one new owner"),
        (f"/console/findings/{finding.id}/resolve", {"note": "x" * 2001}, 400, "note"),
        (f"/console/people/{org.member.id}/revoke", {}, 409, ""),
        ("/console/runs/00000000-0000-0000-0000-000000000000/approve", {}, 404, "not found"),
    ]
    for path, form, status, says in cases:
        answer = client.post(path, data={"csrf": csrf, **form})
        text = answer.get_data(as_text=True)
        assert answer.status_code == status, (path, text)
        assert says in text and 'id="problem"' in text and "Traceback" not in text
    bad_filter = client.get("/console/audit?since=yesterday&key_id=12")
    assert bad_filter.status_code == 400
    assert "must be" in bad_filter.get_data(as_text=True)
    assert _decided(sessions) == before


def test_a_closed_finding_cannot_be_resolved_again(client, org, reviewed, sessions):
    sign_in(client, org.admin_token)
    review = reviewed[org.member.email]
    csrf = csrf_of(client.get(f"/console/reviews/{review.id}").get_data(as_text=True))
    finding_id = review.findings[0].id
    first = client.post(f"/console/findings/{finding_id}/resolve", data={"csrf": csrf})
    assert first.status_code == 303
    again = client.post(f"/console/findings/{finding_id}/resolve", data={"csrf": csrf})
    assert again.status_code == 409
    assert "already resolved" in again.get_data(as_text=True)
    with sessions() as s:
        assert s.get_one(ReviewFinding, finding_id).state is FindingState.RESOLVED


def test_a_revocation_reviews_open_findings_offer_resolve_and_reassign(client, org, reviewed):
    """Guard for the campaign's rule (reviews.answerable_by_hand): a review's own findings
    keep their buttons."""
    sign_in(client, org.admin_token)
    review = reviewed[org.member.email]
    page = client.get(f"/console/reviews/{review.id}").get_data(as_text=True)
    key_finding = next(x for x in review.findings if x.subject_type == "api_key")
    assert f"/console/findings/{key_finding.id}/resolve" in page
    assert f"/console/findings/{key_finding.id}/reassign" in page
    assert "Answered in its" not in page


def test_reassign_hands_the_key_to_a_colleague(client, org, reviewed, sessions):
    sign_in(client, org.admin_token)
    review = reviewed[org.member.email]
    key_finding = next(x for x in review.findings if x.subject_type == "api_key")
    page = client.get(f"/console/reviews/{review.id}").get_data(as_text=True)
    assert f'value="{org.manager.id}"' in page  # an ACTIVE person to hand it to
    answer = client.post(
        f"/console/findings/{key_finding.id}/reassign",
        data={"csrf": csrf_of(page), "user_id": str(org.manager.id), "team_id": ""},
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    with sessions() as s:
        assert s.get_one(ReviewFinding, key_finding.id).state is FindingState.RESOLVED
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "review.reassigned"))
        assert event.actor == "ada@acme.example"


def test_revocations_and_time_to_kill_per_day(session, org, reviewed):
    now = utcnow()
    # From the revocation (what time to kill counts from), not the review opened after it: on
    # a loaded machine the review may come a second later.
    for seconds, review in zip((2, 4), reviewed.values(), strict=True):
        revoked_at = session.get(Revocation, review.revocation_id).revoked_at
        for finding in review.findings:
            if finding.subject_type == "api_key":
                finding.invalidated_at = revoked_at + timedelta(seconds=seconds)
    session.commit()
    counts = revocations_per_day(session, org.org.id, days=30, now=now)
    assert len(counts) == 30 and counts[-1].day == now.date()
    assert counts[-1].count == 2 and sum(day.count for day in counts) == 2
    killed = time_to_kill_per_day(session, org.org.id, days=30, now=now)
    assert killed[-1].count == 2 and sum(day.count for day in killed) == 2
    assert killed[-1].value == pytest.approx(3.0)  # the median of 2 s and 4 s


def test_deliveries_page_and_reprocess_an_event_delivery(client, org, session, sessions):
    from models.actions.idp_events import CHANNEL_EVENTS, FAILED, RECEIVED, accept_delivery
    from models.entities import ReceivedDelivery

    recorded = accept_delivery(
        session,
        organisation_id=org.org.id,
        channel=CHANNEL_EVENTS,
        delivery_id="msg_console_1",
        payload={"events": []},
    )
    stored = session.scalar(
        select(ReceivedDelivery).where(ReceivedDelivery.delivery_id == "msg_console_1")
    )
    stored.status = FAILED
    session.commit()
    assert recorded.is_new
    sign_in(client, org.admin_token)
    page = client.get("/console/deliveries").get_data(as_text=True)
    assert "msg_console_1" in page and "Reprocess" in page
    answer = client.post(
        f"/console/event-deliveries/{stored.id}/reprocess", data={"csrf": csrf_of(page)}
    )
    assert answer.status_code == 303 and "done=reprocessing" in answer.headers["Location"]
    with sessions() as s:
        # Received again; the run's worker may already have applied it again since.
        assert s.get_one(ReceivedDelivery, stored.id).status != FAILED
        event = s.scalar(
            select(AuditEvent).where(AuditEvent.action == "event_delivery.reprocess_requested")
        )
        assert event.actor == "ada@acme.example"
        assert (event.before["status"], event.after["status"]) == (FAILED, RECEIVED)
    sign_in(client, org.manager_token)
    assert client.get("/console/deliveries").status_code == 403


def test_a_review_page_links_to_the_next_and_previous_findings(client, org, session):
    for _ in range(4):
        f.make_key(session, org.org, owner=org.member)
    session.flush()
    review = _review_of(session, org.member)
    every = {str(finding.id) for finding in review.findings}
    assert len(every) >= 4
    sign_in(client, org.admin_token)

    seen: list[str] = []
    url = f"/console/reviews/{review.id}?limit=2"
    first = client.get(url).get_data(as_text=True)
    assert 'id="findings-previous"' not in first
    html = first
    while True:
        seen += [i for i in every if f'id="finding-{i}"' in html]
        link = re.search(r'id="findings-next" rel="next" href="([^"]+)"', html)
        if link is None:
            break
        html = client.get(unescape(link.group(1))).get_data(as_text=True)
    assert sorted(seen) == sorted(every)  # every finding reachable, each on one page
    second = client.get(
        unescape(re.search(r'id="findings-next" rel="next" href="([^"]+)"', first).group(1))
    ).get_data(as_text=True)
    back = re.search(r'id="findings-previous" rel="prev" href="([^"]+)"', second)
    assert back is not None and "limit=2" in back.group(1)
    again = client.get(unescape(back.group(1))).get_data(as_text=True)
    assert [i for i in every if f'id="finding-{i}"' in again] == [
        i for i in every if f'id="finding-{i}"' in first
    ]


def test_a_query_parameter_given_twice_is_a_page_that_says_so(client, org):
    sign_in(client, org.admin_token)
    answer = client.get("/console/audit?action=user.revoked&action=user.created")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and answer.mimetype == "text/html", text
    assert "action" in text and 'id="problem"' in text and "Traceback" not in text
