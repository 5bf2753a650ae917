"""SCIM deactivations, deletions and role drops past the threshold are held: the IdP gets
the answer it expects, nobody is revoked until an admin approves, and discarding drops them."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.scim import set_group_role
from models.entities import OutboxMessage, Revocation, User
from models.enums import ChangeKind, ChangeStatus, Role, Source, UserStatus
from tests.mass_change.conftest import THRESHOLD, audit_actions, changes, statuses, user_id
from tests.scim.payloads import okta_deactivate, rfc7644_3_5_2_patch
from tests.support import factories as f

ACTIVE, REVOKED = UserStatus.ACTIVE, UserStatus.REVOKED
HOLDS = "/api/v1/mass-change/holds"


def people(count: int, start: int = 0) -> list[str]:
    return [f"p{n}@gated.test" for n in range(start, start + count)]


def deactivate_all(scim, ids: list[str]) -> list[dict]:
    answers = [scim.patch(f"/Users/{scim_id}", okta_deactivate()) for scim_id in ids]
    assert [a.status_code for a in answers] == [200] * len(ids)
    return [a.json for a in answers]


def test_a_mass_deactivation_is_held_answered_as_asked_and_applied_once_approved(
    scim, client, gated, sessions
):
    emails = people(6)
    ids = gated.scim_users(scim, *emails)

    answers = deactivate_all(scim, ids)

    assert [a["active"] for a in answers] == [False] * 6  # what the IdP set, every time
    assert statuses(sessions, emails) == [REVOKED] * THRESHOLD + [ACTIVE] * 3
    assert [scim.get(f"/Users/{i}").json["active"] for i in ids] == [False] * 6
    inactive = scim.get("/Users?filter=active eq false&count=50").json
    assert inactive["totalResults"] == 6
    held = changes(sessions, ChangeStatus.HELD)
    assert [h.kind for h in held] == [ChangeKind.DEACTIVATE] * 3
    assert len({h.batch_id for h in held}) == 1
    listed = client.get(HOLDS, headers=gated.admin_headers).json["items"]
    assert [item["user_email"] for item in listed] == emails[3:]
    assert {item["user_status"] for item in listed} == {"ACTIVE"}
    with sessions() as fresh:
        sent = fresh.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "notifications.dispatch")
        )
        (alert,) = [m for m in sent if m.kwargs["event"] == "mass_change.held"]
    # One alert per tripped batch (not one per held change), to the organisation's admins.
    assert alert.kwargs["recipient_user_ids"] == [str(gated.admin_id)]

    approved = client.post(
        f"/api/v1/mass-change/batches/{held[0].batch_id}/approve", headers=gated.admin_headers
    )

    assert approved.status_code == 200, approved.json
    assert [item["status"] for item in approved.json["items"]] == ["approved"] * 3
    assert statuses(sessions, emails) == [REVOKED] * 6
    with sessions() as fresh:
        sources = {r.source for r in fresh.scalars(select(Revocation))}
    assert sources == {Source.SCIM}  # still SCIM's revocation: SCIM may undo it
    assert audit_actions(sessions) == [
        "mass_change.settings_changed",
        "mass_change.gate_tripped",
        *["mass_change.held"] * 3,
        *["mass_change.approved"] * 3,
        "mass_change.gate_reopened",
    ]
    assert [scim.get(f"/Users/{i}").json["active"] for i in ids] == [False] * 6

    # The gate is open again and counts from the decision: the next one applies at once.
    (later,) = gated.scim_users(scim, "later@gated.test")
    deactivate_all(scim, [later])
    assert statuses(sessions, ["later@gated.test"]) == [REVOKED]


def test_discarding_a_batch_revokes_nobody_and_scim_shows_them_active_again(
    scim, client, gated, sessions
):
    emails = people(5)
    ids = gated.scim_users(scim, *emails)
    deactivate_all(scim, ids)
    batch_id = changes(sessions, ChangeStatus.HELD)[0].batch_id

    discarded = client.post(
        f"/api/v1/mass-change/batches/{batch_id}/discard", headers=gated.admin_headers
    )

    assert discarded.status_code == 200
    assert statuses(sessions, emails) == [REVOKED] * THRESHOLD + [ACTIVE] * 2
    assert [scim.get(f"/Users/{i}").json["active"] for i in ids] == [False] * 3 + [True] * 2
    assert audit_actions(sessions)[-3:] == [
        "mass_change.discarded",
        "mass_change.discarded",
        "mass_change.gate_reopened",
    ]
    again = client.post(
        f"/api/v1/mass-change/batches/{batch_id}/approve", headers=gated.admin_headers
    )
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    assert statuses(sessions, emails[3:]) == [ACTIVE] * 2


def test_non_destructive_changes_keep_applying_while_the_gate_holds(scim, client, gated, sessions):
    emails = people(6)
    ids = gated.scim_users(scim, *emails)
    deactivate_all(scim, ids[:5])  # two held

    renamed = scim.patch(
        f"/Users/{ids[5]}",
        rfc7644_3_5_2_patch({"op": "replace", "path": "displayName", "value": "R"}),
    )
    assert renamed.status_code == 200 and renamed.json["displayName"] == "R"
    gated.scim_users(scim, "newcomer@gated.test")
    assert statuses(sessions, ["newcomer@gated.test"]) == [ACTIVE]
    # The IdP takes one deactivation back: that hold is superseded, the person stays.
    back = scim.patch(
        f"/Users/{ids[3]}", rfc7644_3_5_2_patch({"op": "replace", "value": {"active": True}})
    )
    assert back.status_code == 200 and back.json["active"] is True
    assert [h.user_id for h in changes(sessions, ChangeStatus.SUPERSEDED)] == [
        user_id(sessions, emails[3])
    ]
    # Repeating a held deactivation holds it once, not twice.
    deactivate_all(scim, [ids[4], ids[4]])
    assert len(changes(sessions, ChangeStatus.HELD)) == 1
    # Another destructive change from SCIM is held too, however long ago the window began.
    deactivate_all(scim, [ids[5]])
    assert len(changes(sessions, ChangeStatus.HELD)) == 2
    # An admin is not gated.
    newcomer_id = user_id(sessions, "newcomer@gated.test")
    revoked = client.post(
        f"/api/v1/users/{newcomer_id}/revoke", json={}, headers=gated.admin_headers
    )
    assert revoked.status_code == 200, revoked.json
    assert statuses(sessions, [*emails[3:], "newcomer@gated.test"]) == [ACTIVE] * 3 + [REVOKED]


def test_a_held_scim_delete_is_gone_for_the_idp_but_revokes_only_once_approved(
    scim, client, gated, sessions
):
    emails = people(4)
    ids = gated.scim_users(scim, *emails)
    answers = [scim.delete(f"/Users/{i}") for i in ids]

    assert [a.status_code for a in answers] == [204] * 4
    assert [scim.get(f"/Users/{i}").status_code for i in ids] == [404] * 4
    assert statuses(sessions, emails) == [REVOKED] * 3 + [ACTIVE]
    (held,) = changes(sessions, ChangeStatus.HELD)
    assert held.kind is ChangeKind.DELETE

    approved = client.post(f"{HOLDS}/{held.id}/approve", headers=gated.admin_headers)

    assert approved.status_code == 200 and approved.json["items"][0]["status"] == "approved"
    assert statuses(sessions, emails) == [REVOKED] * 4
    assert "mass_change.gate_reopened" in audit_actions(sessions)


def test_role_drops_from_group_mapping_are_held_and_recomputed_on_approval(
    scim, client, gated, sessions, session
):
    set_group_role(
        session, organisation=gated.org, group_name="Admins", role=Role.ORG_ADMIN, actor=f.SETUP
    )
    session.commit()
    emails = people(5)
    ids = gated.scim_users(scim, *emails)
    group = scim.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Admins",
            "members": [{"value": i} for i in ids],
        },
    )
    assert group.status_code == 201, group.json
    assert _roles(sessions, emails) == [Role.ORG_ADMIN] * 5

    emptied = scim.patch(
        f"/Groups/{group.json['id']}",
        rfc7644_3_5_2_patch({"op": "replace", "path": "members", "value": []}),
    )

    assert emptied.status_code == 200 and not emptied.json.get("members")
    assert _roles(sessions, emails) == [Role.USER] * 3 + [Role.ORG_ADMIN] * 2
    held = changes(sessions, ChangeStatus.HELD)
    assert [h.kind for h in held] == [ChangeKind.ROLE_DROP] * 2

    approved = client.post(
        f"/api/v1/mass-change/batches/{held[0].batch_id}/approve", headers=gated.admin_headers
    )

    assert approved.status_code == 200
    assert _roles(sessions, emails) == [Role.USER] * 5


def _roles(sessions, emails: list[str]) -> list[Role]:
    with sessions() as fresh:
        by_email = {u.email: u.role for u in fresh.scalars(select(User))}
    return [by_email[email] for email in emails]
