"""Revocation to reactivation through the API, a real worker, a loopback gateway and hooks."""

import re

from sqlalchemy import select

from connectors.signed_webhooks import verify
from models.base import utcnow
from models.entities import (
    NotificationDelivery,
    ReviewFinding,
    RevocationReview,
    VirtualApiKey,
)
from models.enums import DeliveryStatus, FindingState, HookKind, Severity
from tests.reviews.conftest import build_leaver
from tests.reviews.test_deliveries import add_hook
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until


def test_revoke_review_notify_urgent_acknowledge_and_reactivate(
    session, sessions, client, settings, worker, hooks, gateway, mailbox
):
    world = build_leaver(session)
    earlier = f.make_key(session, world.org, owner=world.person)
    earlier.revoked, earlier.revoked_at = True, utcnow()
    _siem, siem_secret = add_hook(
        session,
        settings,
        world.org,
        HookKind.WEBHOOK,
        hooks.url(f"siem-{world.org.slug}"),
        name="siem",
    )
    _flaky, flaky_secret = add_hook(
        session,
        settings,
        world.org,
        HookKind.WEBHOOK,
        hooks.url(f"flaky-{world.org.slug}"),
        name="flaky",
    )
    hooks.fail_first(f"flaky-{world.org.slug}", 3)
    token = f.admin_token(session, world.org, world.admin)
    session.commit()
    ids = {
        name: str(getattr(world, name).id) for name in ("key_a", "key_b", "team_key", "other_key")
    }
    everything = set(ids.values()) | {str(earlier.id)}
    headers = {"Authorization": f"Bearer {token}"}

    revoked = client.post(
        f"/api/v1/users/{world.person.id}/revoke", json={"reason": "left"}, headers=headers
    )

    assert revoked.status_code == 200, revoked.json
    # the gateway forgets exactly the two keys the revocation disabled
    wait_relaying(lambda: gateway.keys_for(everything), what="gateway invalidation")
    assert gateway.keys_for(everything) == [{ids["key_a"], ids["key_b"]}]
    assert gateway.calls[0]["auth"] == "Bearer gateway-shared-secret"

    def review():
        with sessions() as fresh:
            found = fresh.scalars(select(RevocationReview)).one_or_none()
            return found and (found, list(found.findings))

    stored, findings = wait_relaying(review, what="the review opened by the worker")
    by_subject = {str(fi.subject_id): fi for fi in findings}
    assert by_subject[ids["team_key"]].action == "hold_for_review"
    assert str(earlier.id) not in by_subject and ids["other_key"] not in by_subject

    def acknowledged_by_gateway():
        with sessions() as fresh:
            rows = fresh.scalars(
                select(ReviewFinding).where(ReviewFinding.kind == "user_key")
            ).all()
            return all(r.invalidation_status == "acknowledged" and r.invalidated_at for r in rows)

    wait_relaying(acknowledged_by_gateway, what="the finding records the gateway's acknowledgement")

    # owner, managers and admins are told; each hook gets one valid, signed message
    for person in (world.person, world.manager_a, world.admin):
        wait_relaying(lambda p=person: mailbox.to(p.email), what=f"mail to {person.email}")
    siem_messages = wait_relaying(lambda: hooks.at(f"siem-{world.org.slug}"), what="siem hook")
    opened = siem_messages[0]
    assert verify([siem_secret], body=opened.body, headers=opened.headers)
    assert opened.json["type"] == "review.opened"
    assert opened.json["data"]["review_id"] == str(stored.id)
    assert opened.json["data"]["links"]["acknowledge"].startswith(settings.public_base_url)

    def flaky_settled():
        with sessions() as fresh:
            rows = fresh.scalars(
                select(NotificationDelivery).where(NotificationDelivery.hook_id == _flaky.id)
            ).all()
            return rows and all(r.status is DeliveryStatus.DELIVERED for r in rows) and rows

    (flaky_delivery,) = wait_relaying(flaky_settled, what="the flaky hook's delivery")
    flaky = hooks.at(f"flaky-{world.org.slug}")
    assert [r.status for r in flaky] == [503, 503, 503, 200]
    assert all(
        verify([flaky_secret], body=r.body, headers=r.headers) == str(flaky_delivery.id)
        for r in flaky
    )

    # the key is still used after the revocation: an urgent finding and an urgent alert
    f.make_usage(session, world.org, world.person, world.key_a, cost="3.00")
    session.commit()
    from worker.celery_app import celery_app

    celery_app.send_task("reviews.sweep")

    def urgent():
        with sessions() as fresh:
            return fresh.scalars(
                select(ReviewFinding).where(ReviewFinding.kind == "usage_after_revocation")
            ).one_or_none()

    finding = wait_until(urgent, what="the urgent finding")
    assert finding.severity is Severity.URGENT and finding.subject_id == world.key_a.id
    alert = wait_relaying(
        lambda: [
            m for m in hooks.at(f"siem-{world.org.slug}") if m.json["type"] == "finding.urgent"
        ],
        what="the urgent alert",
    )
    assert alert[0].json["data"]["findings"][0]["kind"] == "usage_after_revocation"

    # the admin acknowledges with the signed link from the email
    mail = next(m for m in mailbox.to(world.admin.email) if "opened" in str(m["Subject"]))
    link = re.search(r"(/reviews/acknowledge/\S+)", mail.get_content()).group(1)
    assert client.post(link).status_code == 200
    with sessions() as fresh:
        open_ones = fresh.scalars(
            select(ReviewFinding).where(ReviewFinding.state == FindingState.OPEN)
        ).all()
        assert open_ones and all(
            r.acknowledged_by == f"link:{world.admin.email}" for r in open_ones
        )

    # key_a was used after the revocation: reactivation refuses until the admin says so
    path = f"/api/v1/users/{world.person.id}/reactivate"
    refused = client.post(path, headers=headers)
    assert refused.status_code == 409 and "restore_used_keys" in refused.json["detail"]
    # reactivation restores only what the revocation disabled, and invalidates again
    back = client.post(path, headers=headers, json={"restore_used_keys": True})
    assert back.status_code == 200
    wait_relaying(lambda: len(gateway.keys_for(everything)) == 2, what="second invalidation")
    assert gateway.keys_for(everything)[1] == {ids["key_a"], ids["key_b"]}
    with sessions() as fresh:
        state = {str(k.id): k.revoked for k in fresh.scalars(select(VirtualApiKey))}
    assert state[ids["key_a"]] is False and state[ids["key_b"]] is False
    assert state[str(earlier.id)] is True and state[ids["other_key"]] is False
