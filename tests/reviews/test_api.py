"""Admin API for reviews, findings, the revocation preview, hooks and the acknowledgement link."""

from sqlalchemy import func, select

from models import outbox
from models.entities import AuditEvent, ReviewFinding, User, VirtualApiKey
from models.enums import FindingState, Role, UserStatus
from tests.reviews.conftest import build_leaver, findings_by_kind, revoke_and_review
from tests.support import factories as f


def quiet_commit(session):
    """Commit the arrangement without handing its side effects to the broker."""
    outbox.take_new_messages(session)
    session.commit()


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def arrange(session):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    tokens = {
        "admin": f.admin_token(session, world.org, world.admin),
        "manager": f.admin_token(session, world.org, world.manager_a),
        "user": f.admin_token(session, world.org, f.make_user(session, world.org)),
    }
    quiet_commit(session)
    return world, review, tokens


def test_preview_shows_the_blast_radius_and_changes_nothing(session, client):
    world = build_leaver(session)
    f.make_usage(session, world.org, world.person, world.key_a, cost="1.25")
    token = f.admin_token(session, world.org, world.admin)
    quiet_commit(session)
    audits = session.scalar(select(func.count(AuditEvent.id)))
    session.commit()  # end the read (SQLite: a transaction holds the write lock)

    response = client.get(
        f"/api/v1/users/{world.person.id}/revocation-preview", headers=auth(token)
    )

    assert response.status_code == 200, response.json
    body = response.json
    assert {k["id"] for k in body["keys"]} == {str(world.key_a.id), str(world.key_b.id)}
    assert all(k["action"] == "revoke" for k in body["keys"])
    assert [k["action"] for k in body["team_keys"]] == ["hold_for_review"]
    by_team = {t["name"]: t for t in body["teams"]}
    assert by_team["Team B"]["left_without_manager"] is True
    assert by_team["Team A"]["left_without_manager"] is False
    assert len(body["budgets"]) == 1 and len(body["quotas"]) == 1
    assert body["usage"]["requests"] == 1 and body["usage"]["spend"].startswith("1.25")
    key_a = next(k for k in body["keys"] if k["id"] == str(world.key_a.id))
    assert key_a["usage_last_30_days"]["requests"] == 1
    assert session.get(User, world.person.id).status is UserStatus.ACTIVE
    assert session.get(VirtualApiKey, world.key_a.id).revoked is False
    assert session.scalar(select(func.count(AuditEvent.id))) == audits


def test_preview_of_someone_the_caller_cannot_see_is_not_found(session, client):
    world = build_leaver(session)
    outsider = f.make_user(session, world.org, role=Role.USER)
    token = f.admin_token(session, world.org, outsider)
    quiet_commit(session)
    response = client.get(
        f"/api/v1/users/{world.person.id}/revocation-preview", headers=auth(token)
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_admins_list_and_read_reviews_managers_see_their_teams_users_see_nothing(session, client):
    world, review, tokens = arrange(session)

    listed = client.get("/api/v1/reviews?status=open", headers=auth(tokens["admin"]))
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json["items"]] == [str(review.id)]
    detail = client.get(f"/api/v1/reviews/{review.id}", headers=auth(tokens["admin"])).json
    assert detail["user"]["email"] == world.person.email
    assert {fi["kind"] for fi in detail["findings"]} >= {"user_key", "team_key", "budget"}
    assert detail["findings"][0]["state"] == "open"

    as_manager = client.get("/api/v1/reviews", headers=auth(tokens["manager"])).json
    assert [r["id"] for r in as_manager["items"]] == [str(review.id)]
    assert client.get("/api/v1/reviews", headers=auth(tokens["user"])).json["items"] == []
    assert (
        client.get(f"/api/v1/reviews/{review.id}", headers=auth(tokens["user"])).status_code == 404
    )
    assert (
        client.get("/api/v1/reviews?status=maybe", headers=auth(tokens["admin"])).status_code == 400
    )


def test_resolve_dismiss_and_acknowledge_through_the_api_are_audited(session, client):
    world, review, tokens = arrange(session)
    kinds = findings_by_kind(review)
    budget, quota = kinds["budget"][0], kinds["quota"][0]
    headers = auth(tokens["admin"])

    resolved = client.post(
        f"/api/v1/findings/{budget.id}/resolve", json={"note": "moved"}, headers=headers
    )
    assert resolved.status_code == 200 and resolved.json["state"] == "resolved"
    assert (
        resolved.json["resolved_by"] == world.admin.email and resolved.json["resolution"] == "moved"
    )
    again = client.post(f"/api/v1/findings/{budget.id}/resolve", headers=headers)
    assert again.status_code == 409
    assert client.post(f"/api/v1/findings/{quota.id}/dismiss", headers=headers).status_code == 200
    ack = client.post(f"/api/v1/reviews/{review.id}/acknowledge", headers=headers)
    assert ack.status_code == 200 and ack.json["acknowledged"] >= 1

    session.expire_all()
    assert session.get(ReviewFinding, budget.id).state is FindingState.RESOLVED
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {
        "review.finding_resolved",
        "review.finding_dismissed",
        "review.finding_acknowledged",
    } <= actions


def test_managers_change_only_their_teams_findings(session, client):
    world, review, tokens = arrange(session)
    kinds = findings_by_kind(review)
    headers = auth(tokens["manager"])

    budget = kinds["budget"][0]  # not tied to a team
    assert client.post(f"/api/v1/findings/{budget.id}/resolve", headers=headers).status_code == 403
    team_key = kinds["team_key"][0]  # a Team A key; the caller manages Team A
    moved = client.post(
        f"/api/v1/findings/{team_key.id}/reassign",
        json={"team_id": str(world.team_b.id)},
        headers=headers,
    )
    assert moved.status_code == 403  # Team B is not theirs
    kept = client.post(
        f"/api/v1/findings/{team_key.id}/reassign",
        json={"user_id": str(world.manager_a.id), "note": "mine now"},
        headers=headers,
    )
    assert kept.status_code == 200, kept.json
    assert kept.json["state"] == "resolved"


def test_bad_reassign_requests_get_clear_problems(session, client):
    world, review, tokens = arrange(session)
    finding = findings_by_kind(review)["budget"][0]
    headers = auth(tokens["admin"])
    url = f"/api/v1/findings/{finding.id}/reassign"

    both = client.post(
        url, json={"user_id": str(world.admin.id), "team_id": str(world.team_a.id)}, headers=headers
    )
    assert both.status_code == 400
    assert client.post(url, json={}, headers=headers).status_code == 400
    assert client.post(url, json={"user_id": "nope"}, headers=headers).status_code == 400
    assert (
        client.post(
            url, json={"user_id": "00000000-0000-0000-0000-000000000000"}, headers=headers
        ).status_code
        == 404
    )
    assert (
        client.post(
            url, data="{not json", headers={**headers, "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            url, json={"user_id": str(world.admin.id), "extra": 1}, headers=headers
        ).status_code
        == 400
    )
    assert client.post("/api/v1/findings/not-a-uuid/resolve", headers=headers).status_code == 404


def test_hooks_api_validates_urls_and_rotates_secrets(session, client):
    _world, _review, tokens = arrange(session)
    headers = auth(tokens["admin"])

    created = client.post(
        "/api/v1/notification-hooks",
        json={
            "name": "siem",
            "kind": "webhook",
            "target": "http://127.0.0.1:9/hook",
            "events": ["review.*"],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.json
    assert created.json["signing_secret"].startswith("whsec_")
    hook_id = created.json["id"]
    slack = client.post(
        "/api/v1/notification-hooks",
        json={
            "name": "chat",
            "kind": "slack",
            "target": "http://127.0.0.1:9/services/T0/B0/secret",
        },
        headers=headers,
    )
    assert slack.status_code == 201 and "secret" not in slack.json["target"]
    assert slack.json["signing_secret"] is None
    for bad in ("http://10.0.0.1/x", "ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        refused = client.post(
            "/api/v1/notification-hooks",
            json={"name": "bad", "kind": "webhook", "target": bad},
            headers=headers,
        )
        assert refused.status_code == 400, bad
    bad_event = client.patch(
        f"/api/v1/notification-hooks/{hook_id}",
        json={"events": ["no spaces allowed"]},
        headers=headers,
    )
    assert bad_event.status_code == 400
    assert (
        client.post(
            "/api/v1/notification-hooks",
            json={"name": "x", "kind": "pigeon", "target": "a"},
            headers=headers,
        ).status_code
        == 400
    )
    assert (
        client.get("/api/v1/notification-hooks", headers=auth(tokens["manager"])).status_code == 403
    )

    rotated = client.post(
        f"/api/v1/notification-hooks/{hook_id}/rotate-secret",
        json={"keep_previous_hours": 1},
        headers=headers,
    )
    assert rotated.status_code == 200
    assert rotated.json["signing_secret"] != created.json["signing_secret"]
    assert len(rotated.json["signing_secrets"]) == 2
    listed = client.get("/api/v1/notification-hooks", headers=headers).json["items"]
    assert {h["name"] for h in listed} == {"siem", "chat"}
    assert client.get(f"/api/v1/notification-hooks/{hook_id}/deliveries", headers=headers).json == {
        "items": []
    }
    assert (
        client.delete(f"/api/v1/notification-hooks/{hook_id}", headers=headers).status_code == 204
    )
    assert client.get(f"/api/v1/notification-hooks/{hook_id}", headers=headers).status_code == 404


def test_the_signed_link_shows_a_page_and_acknowledges_on_post(session, client, settings):
    world, review, _tokens = arrange(session)
    token = f.review_ack_token(settings.secret_key, review, world.manager_a.email)

    page = client.get(f"/reviews/acknowledge/{token}")
    assert page.status_code == 200 and "<form" in page.text and world.person.email in page.text
    session.expire_all()
    assert all(fi.acknowledged_at is None for fi in session.scalars(select(ReviewFinding)))
    session.commit()  # end the read (SQLite: a transaction holds the write lock)

    done = client.post(f"/reviews/acknowledge/{token}")
    assert done.status_code == 200 and "acknowledged" in done.text
    session.expire_all()
    open_findings = [
        fi for fi in session.scalars(select(ReviewFinding)) if fi.state is FindingState.OPEN
    ]
    assert open_findings and all(
        fi.acknowledged_by == f"link:{world.manager_a.email}" for fi in open_findings
    )

    forged = client.post(f"/reviews/acknowledge/{token[:-3]}abc")
    assert forged.status_code == 403 and forged.mimetype == "text/html"
    garbage = client.get("/reviews/acknowledge/garbage")
    assert garbage.status_code == 400 and "Traceback" not in garbage.text


def test_the_openapi_document_describes_the_review_and_hook_endpoints(client):
    document = client.get("/api/v1/openapi.json").json
    for path in (
        "/users/{user_id}/revocation-preview",
        "/reviews",
        "/reviews/{review_id}/acknowledge",
        "/findings/{finding_id}/reassign",
        "/notification-hooks/{hook_id}/rotate-secret",
    ):
        assert path in document["paths"], path
    assert "ReassignFinding" in document["components"]["schemas"]
    assert "CreateHook" in document["components"]["schemas"]
