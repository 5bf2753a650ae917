"""Configuring hooks and reviewing deliveries: admin API and CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models.actions import idp_events
from models.entities import AuditEvent, EventHookConfig, OutboxMessage, ReceivedDelivery
from models.enums import Role
from tests.events import okta_payloads as okta
from tests.events.conftest import okta_headers, signed
from tests.support import factories as f
from tests.support.worker import settings_env


def admin_headers(session, org, role=Role.ORG_ADMIN) -> dict[str, str]:
    admin = f.make_user(session, org, role=role)
    token = f.admin_token(session, org, admin)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_admin_configures_secrets_that_are_shown_once_and_stored_protected(client, session):
    org = f.make_org(session)
    headers = admin_headers(session, org)
    slug = org.slug

    okta_set = client.put("/api/v1/event-hooks/okta", json={}, headers=headers)
    added = client.post("/api/v1/event-hooks/signing-secrets", headers=headers)
    shown = client.get("/api/v1/event-hooks", headers=headers)

    assert okta_set.status_code == 200 and okta_set.json["okta_secret"].startswith("okta_")
    assert added.status_code == 201 and added.json["secret"].startswith("whsec_")
    assert shown.json["okta"]["configured"] is True
    assert shown.json["events"]["url"].endswith(f"/hooks/events/{slug}")
    text = shown.get_data(as_text=True)
    assert okta_set.json["okta_secret"] not in text and added.json["secret"] not in text
    config = session.get(EventHookConfig, org.id)
    stored = json.dumps(config.signing_secrets) + (config.okta_secret_hash or "")
    assert added.json["secret"] not in stored and okta_set.json["okta_secret"] not in stored
    session.rollback()  # end the read: on SQLite every transaction holds the write lock

    challenge = {"X-Okta-Verification-Challenge": "c1"}
    verify = client.get(
        f"/hooks/okta/{slug}",
        headers={**okta_headers(okta_set.json["okta_secret"]), **challenge},
    )
    assert verify.json == {"verification": "c1"}
    body, signed_headers = signed(added.json["secret"], {"type": "user.updated"})
    assert (
        client.post(f"/hooks/events/{slug}", data=body, headers=signed_headers).status_code == 202
    )

    secret_id = added.json["id"]
    removed = client.delete(f"/api/v1/event-hooks/signing-secrets/{secret_id}", headers=headers)
    assert removed.status_code == 204
    shown = client.get("/api/v1/event-hooks", headers=headers)
    assert shown.json["events"]["signing_secrets"] == []
    body, signed_headers = signed(added.json["secret"], {"type": "user.updated"})
    assert (
        client.post(f"/hooks/events/{slug}", data=body, headers=signed_headers).status_code == 404
    )


def test_hook_settings_refuse_bad_input_and_non_admins(client, session):
    org = f.make_org(session)
    headers = admin_headers(session, org)
    user_headers = admin_headers(session, org, role=Role.USER)
    assert (
        client.put(
            "/api/v1/event-hooks/okta", json={"secret": "short"}, headers=headers
        ).status_code
        == 400
    )
    bad_header = {"header_name": "Bad Header!"}
    assert (
        client.put("/api/v1/event-hooks/okta", json=bad_header, headers=headers).status_code == 400
    )
    weak = {"secret": "not-a-whsec-secret"}
    assert (
        client.post("/api/v1/event-hooks/signing-secrets", json=weak, headers=headers).status_code
        == 400
    )
    assert client.get("/api/v1/event-hooks", headers=user_headers).status_code == 403
    assert client.get("/api/v1/event-deliveries", headers=user_headers).status_code == 403


def test_deliveries_are_listed_with_their_outcome_and_can_be_reprocessed(client, session, settings):
    org, other = f.make_org(session), f.make_org(session)
    headers = admin_headers(session, org)
    payload = okta.delivery(
        okta.event("user.lifecycle.deactivate", [okta.user_target("00u9", "x@example.com")])
    )
    recorded = idp_events.accept_delivery(
        session, organisation_id=org.id, channel="okta", delivery_id="d1", payload=payload
    )
    idp_events.process_delivery(session, delivery=recorded.delivery)
    idp_events.accept_delivery(
        session, organisation_id=other.id, channel="okta", delivery_id="theirs", payload=payload
    )
    session.commit()

    listed = client.get("/api/v1/event-deliveries?status=processed", headers=headers).json
    assert [d["delivery_id"] for d in listed["items"]] == ["d1"]
    assert listed["items"][0]["outcome"] == "1 ignored"
    detail = client.get(f"/api/v1/event-deliveries/{recorded.delivery.id}", headers=headers).json
    assert detail["events"][0]["detail"] == "unknown user"
    assert client.get("/api/v1/event-deliveries?status=nope", headers=headers).status_code == 400

    again = client.post(
        f"/api/v1/event-deliveries/{recorded.delivery.id}/reprocess", headers=headers
    )
    assert again.status_code == 202 and again.json["status"] == "received"
    tasks = session.scalars(select(OutboxMessage).where(OutboxMessage.task == "events.drain"))
    assert [t.kwargs for t in tasks] == [{"organisation_id": str(org.id)}]  # by the reprocess
    theirs = session.scalar(
        select(ReceivedDelivery.id).where(ReceivedDelivery.delivery_id == "theirs")
    )
    session.rollback()
    assert client.get(f"/api/v1/event-deliveries/{theirs}", headers=headers).status_code == 404


def test_cli_sets_secrets_and_lists_deliveries(session, settings, monkeypatch):
    org = f.make_org(session)
    session.commit()
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    okta_out = runner.invoke(main, ["events", "okta-secret", "--org", org.slug, "--json"])
    secret_out = runner.invoke(main, ["events", "secret-add", "--org", org.slug, "--json"])
    shown = runner.invoke(main, ["events", "show", "--org", org.slug, "--json"])
    listed = runner.invoke(main, ["events", "deliveries", "--org", org.slug])
    bad = runner.invoke(main, ["events", "delivery", "--org", org.slug, "not-an-id"])

    assert okta_out.exit_code == 0, okta_out.output
    assert json.loads(okta_out.output)["secret"].startswith("okta_")
    assert json.loads(secret_out.output)["secret"].startswith("whsec_")
    assert json.loads(shown.output)["okta"]["configured"] is True
    assert listed.output.strip() == "no deliveries"
    assert bad.exit_code != 0 and "not a delivery id" in bad.output


def test_a_custom_header_named_as_the_authorization_header_is_refused(client, session):
    org = f.make_org(session)
    headers = admin_headers(session, org)
    same = {
        "header_name": "Authorization",
        "custom_header": {"name": "authorization", "value": "x"},
    }
    refused = client.put("/api/v1/event-hooks/okta", json=same, headers=headers)
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    shown = client.get("/api/v1/event-hooks", headers=headers).json
    assert shown["okta"]["configured"] is False


def test_clearing_an_okta_secret_that_is_not_set_is_a_404_and_audits_nothing(client, session):
    """A DELETE of what is absent is a 404 in the admin API (as DELETE /sign-in/oidc and a
    signing secret's); DELETE /event-hooks/okta answered 204 with no secret set, and wrote an
    `event_hooks.okta_secret_cleared` for a change that did not happen (before and after)."""
    org = f.make_org(session)
    headers = admin_headers(session, org)

    def cleared_events() -> int:
        found = session.scalars(
            select(AuditEvent.id).where(
                AuditEvent.organisation_id == org.id,
                AuditEvent.action == "event_hooks.okta_secret_cleared",
            )
        ).all()
        session.rollback()
        return len(found)

    never_set = client.delete("/api/v1/event-hooks/okta", headers=headers)
    assert never_set.status_code == 404, never_set.get_data(as_text=True)
    assert never_set.mimetype == "application/problem+json"
    assert cleared_events() == 0
    assert client.put("/api/v1/event-hooks/okta", json={}, headers=headers).status_code == 200
    assert client.delete("/api/v1/event-hooks/okta", headers=headers).status_code == 204
    again = client.delete("/api/v1/event-hooks/okta", headers=headers)
    assert again.status_code == 404, again.get_data(as_text=True)
    assert cleared_events() == 1
