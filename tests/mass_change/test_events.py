"""Signed IdP events past the threshold are held: the receiver accepts them as usual, the
drain records them as held, the admins are emailed, and an admin decides with the CLI."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.identities import link_identity
from models.entities import IdentityLink, ReceivedDelivery, Revocation
from models.enums import ChangeKind, ChangeStatus, Source, UserStatus
from tests.events import okta_payloads as okta
from tests.events.conftest import generic, okta_headers, signed
from tests.mass_change.conftest import THRESHOLD, audit_actions, changes, statuses
from tests.support import factories as f
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until

ACTIVE, REVOKED = UserStatus.ACTIVE, UserStatus.REVOKED


def make_people(session, gated, count: int) -> list[str]:
    emails = [f"e{n}@gated.test" for n in range(count)]
    for email in emails:
        f.make_user(session, gated.org, email=email)
    session.commit()
    return emails


def send_signed(client, gated, *events: dict) -> str:
    body, headers = signed(gated.hooked.signing_secret, {"events": list(events)})
    response = client.post(gated.hooked.events_url, data=body, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return headers["webhook-id"]


def processed(sessions, delivery_id: str) -> ReceivedDelivery | None:
    with sessions() as fresh:
        delivery = fresh.scalar(
            select(ReceivedDelivery).where(ReceivedDelivery.delivery_id == delivery_id)
        )
        return delivery if delivery is not None and delivery.status == "processed" else None


def deactivated(email: str) -> dict:
    return generic("user.deactivated", user={"email": email})


def test_signed_mass_deactivation_is_held_admins_emailed_then_approved_by_cli(
    session, sessions, client, worker, gated, mailbox, run_json
):
    emails = make_people(session, gated, 6)

    delivery_id = send_signed(client, gated, *[deactivated(email) for email in emails])

    delivery = wait_until(lambda: processed(sessions, delivery_id), what="the drain")
    outcomes = [result["outcome"] for result in delivery.results]
    assert outcomes == ["applied"] * THRESHOLD + ["held"] * 3
    assert delivery.outcome == "3 applied, 3 held"
    assert statuses(sessions, emails) == [REVOKED] * 3 + [ACTIVE] * 3
    # The admins are also told of the three revocations' reviews, in no set order.
    alerts = wait_relaying(
        lambda: [m for m in mailbox.to(gated.admin_email) if "Mass change" in m["Subject"]],
        what="the admins' alert",
    )
    assert "Mass change held" in alerts[0]["Subject"]
    held = run_json("holds", "list", "--org", gated.org.slug)
    assert [item["user_email"] for item in held] == emails[3:]
    assert {item["source"] for item in held} == {"events"}

    decided = run_json("holds", "approve", "--org", gated.org.slug, "--batch", held[0]["batch_id"])

    assert [item["status"] for item in decided] == ["approved"] * 3
    assert statuses(sessions, emails) == [REVOKED] * 6
    with sessions() as fresh:
        assert {r.source for r in fresh.scalars(select(Revocation))} == {Source.EVENTS}
    assert audit_actions(sessions)[-4:] == [
        *["mass_change.approved"] * 3,
        "mass_change.gate_reopened",
    ]
    assert run_json("holds", "list", "--org", gated.org.slug) == []


def test_okta_deliveries_held_and_discarded_revoke_nobody(
    session, sessions, client, worker, gated, run, run_json
):
    emails = make_people(session, gated, 5)
    delivery_ids = []
    for n, email in enumerate(emails):
        payload = okta.delivery(
            okta.event("user.lifecycle.deactivate", [okta.user_target(f"00u{n}", email)])
        )
        response = client.post(gated.hooked.okta_url, json=payload, headers=okta_headers())
        assert response.status_code == 200, response.get_data(as_text=True)
        delivery_ids.append(payload["eventId"])
    for delivery_id in delivery_ids:
        wait_until(lambda d=delivery_id: processed(sessions, d), what="the drain")
    held = changes(sessions, ChangeStatus.HELD)
    assert len(held) == 2 and {h.source for h in held} == {Source.OKTA}

    result = run("holds", "discard", "--org", gated.org.slug, str(held[0].id), str(held[1].id))

    assert "2 held changes discarded" in result.output
    assert statuses(sessions, emails) == [REVOKED] * 3 + [ACTIVE] * 2
    assert audit_actions(sessions)[-3:] == [
        "mass_change.discarded",
        "mass_change.discarded",
        "mass_change.gate_reopened",
    ]
    refused = run("holds", "approve", "--org", gated.org.slug, str(held[0].id), ok=False)
    assert "only a held change can be approved" in refused.output
    assert statuses(sessions, emails[3:]) == [ACTIVE] * 2


def test_held_okta_delete_keeps_the_link_until_approved_and_other_events_still_apply(
    session, sessions, client, worker, gated, run_json
):
    emails = make_people(session, gated, 5)
    with sessions() as arrange:
        from models.entities import User

        for n, email in enumerate(emails):
            user = arrange.scalars(select(User).where(User.email == email)).one()
            link_identity(
                arrange, user=user, source=Source.OKTA, external_id=f"00u{n}", actor=f.SETUP
            )
        arrange.commit()
    deletes = [
        okta.event("user.lifecycle.delete.initiated", [okta.user_target(f"00u{n}", email)])
        for n, email in enumerate(emails[:4])
    ]
    payload = okta.delivery(*deletes)
    assert (
        client.post(gated.hooked.okta_url, json=payload, headers=okta_headers()).status_code == 200
    )
    wait_until(lambda: processed(sessions, payload["eventId"]), what="the drain")
    (held,) = changes(sessions, ChangeStatus.HELD)
    assert held.kind is ChangeKind.DELETE
    assert _link_deleted(sessions, "00u3") is False

    # Non-destructive events keep applying while the gate holds.
    renamed = send_signed(
        client, gated, generic("user.updated", user={"email": emails[4]}, changes={"name": "New"})
    )
    assert wait_until(lambda: processed(sessions, renamed)).results[0]["outcome"] == "applied"

    run_json("holds", "approve", "--org", gated.org.slug, str(held.id))

    assert statuses(sessions, emails) == [REVOKED] * 4 + [ACTIVE]
    assert _link_deleted(sessions, "00u3") is True


def test_a_reactivation_from_the_same_source_supersedes_its_held_deactivation(
    session, sessions, client, worker, gated
):
    emails = make_people(session, gated, 4)
    first = send_signed(client, gated, *[deactivated(email) for email in emails])
    wait_until(lambda: processed(sessions, first), what="the drain")
    assert len(changes(sessions, ChangeStatus.HELD)) == 1

    back = send_signed(client, gated, generic("user.reactivated", user={"email": emails[3]}))

    wait_until(lambda: processed(sessions, back), what="the drain")
    assert changes(sessions, ChangeStatus.HELD) == []
    assert len(changes(sessions, ChangeStatus.SUPERSEDED)) == 1
    assert statuses(sessions, emails) == [REVOKED] * 3 + [ACTIVE]
    assert audit_actions(sessions)[-2:] == ["mass_change.superseded", "mass_change.gate_reopened"]


def _link_deleted(sessions, external_id: str) -> bool:
    with sessions() as fresh:
        link = fresh.scalars(
            select(IdentityLink).where(IdentityLink.external_id == external_id)
        ).one()
        return link.deleted_at is not None
