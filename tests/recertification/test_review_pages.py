"""GET /api/v1/reviews/<id> pages its findings (a campaign's review can hold 100,000): the
pages, followed by their cursor, give every finding once in the unpaged order."""

import pytest

from models.actions import recertification
from models.entities import ReviewFinding
from models.enums import RecertDecision
from tests.support import factories as f


@pytest.fixture
def review(session, keys):
    opened = recertification.open_campaign(session, organisation_id=keys.org.id, actor=f.SETUP)
    session.flush()
    finding = session.query(ReviewFinding).filter_by(subject_id=keys.spend.id).one()
    recertification.decide(
        session, finding=finding, decision=RecertDecision.KEEP, reason="ok", actor=f.SETUP
    )
    token = f.admin_token(session, keys.org, keys.admin)
    session.commit()
    return f"/api/v1/reviews/{opened.campaign.review_id}", {"Authorization": f"Bearer {token}"}


def test_pages_followed_by_their_cursor_give_every_finding_once_in_order(client, review):
    url, headers = review
    whole = client.get(url, headers=headers).json
    assert whole["findings_next_cursor"] is None
    assert whole["finding_counts"] == {"open": 3, "resolved": 1}
    assert [f["state"] for f in whole["findings"]] == ["open", "open", "open", "resolved"]

    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(url, query_string=query, headers=headers).json
        assert len(page["findings"]) <= 3
        seen += page["findings"]
        cursor = page["findings_next_cursor"]
        if cursor is None:
            break
    assert [f["id"] for f in seen] == [f["id"] for f in whole["findings"]]
    assert page["status"] == whole["status"] and page["cause"] == "recertification"


def test_the_previous_cursor_pages_back_in_the_same_order(client, review):
    url, headers = review
    whole = [f["id"] for f in client.get(url, headers=headers).json["findings"]]
    first = client.get(url, query_string={"limit": 1}, headers=headers).json
    assert first["findings_previous_cursor"] is None
    third = client.get(
        url, query_string={"limit": 2, "cursor": whole[0]}, headers=headers
    ).json  # findings 2 and 3
    assert [f["id"] for f in third["findings"]] == whole[1:3]
    assert third["findings_previous_cursor"] == whole[1]
    back = client.get(url, query_string={"limit": 2, "before": whole[3]}, headers=headers).json
    assert [f["id"] for f in back["findings"]] == whole[1:3]
    assert back["findings_previous_cursor"] == whole[1] and back["findings_next_cursor"] == whole[2]
    start = client.get(url, query_string={"limit": 2, "before": whole[1]}, headers=headers).json
    assert [f["id"] for f in start["findings"]] == whole[:1]
    assert start["findings_previous_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"cursor": "nope"},
        {"cursor": "00000000-0000-0000-0000-000000000000"},  # not a finding of this review
        {"before": "00000000-0000-0000-0000-000000000000"},
        {"cursor": "00000000-0000-0000-0000-000000000000", "before": "nope"},
    ],
)
def test_bad_paging_is_a_400_in_problem_json(client, review, query):
    url, headers = review
    response = client.get(url, query_string=query, headers=headers)
    assert response.status_code == 400, response.json
    assert response.content_type == "application/problem+json" and response.json["detail"]
