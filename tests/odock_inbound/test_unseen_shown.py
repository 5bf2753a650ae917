"""An admin sees that Odock's last listings lacked a key, budget or quota: the admin API's user
detail and blast-radius preview, the review findings (API and console) show `unseen_since`
after a complete listing misses the object, and nothing once a listing has it again."""

from __future__ import annotations

import uuid
from typing import Any

from models.actions import lifecycle, odock_reconcile, reviews
from models.entities import Organisation, User
from models.enums import Role
from tests.odock_inbound.conftest import key_body
from tests.odock_inbound.test_reconcile import listed, listing
from tests.support import factories as f


def owned(kind: str, owner_email: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"owner_type": "USER", "owner_email": owner_email, "name": name}
    if kind == "budgets":
        return {**body, "amount": "10", "window": "monthly", "version": 1}
    return {**body, "metric": "requests", "limit": 100, "window": "daily", "version": 1}


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def unseen_of(item: dict[str, Any], prefix: str = "") -> tuple[bool, int]:
    return item[f"{prefix}unseen_since"] is not None, item[f"{prefix}unseen_listings"]


def test_a_key_budget_and_quota_a_listing_missed_are_shown_unseen_until_listed_again(
    bridged, session, engine, httpserver, bridged_settings, client
):
    owner = bridged.owner
    missed, kept = uuid.uuid4(), uuid.uuid4()
    objects = {kind: (uuid.uuid4(), uuid.uuid4()) for kind in ("budgets", "quotas")}
    for key_id in (missed, kept):
        assert bridged.put("keys", key_id, key_body(owner)).status_code == 200
    for kind, ids in objects.items():
        for object_id in ids:
            assert bridged.put(kind, object_id, owned(kind, owner.email, kind)).status_code == 200
    organisation = session.get_one(Organisation, bridged.org.id)
    admin = f.make_user(session, organisation, role=Role.ORG_ADMIN)
    token = f.admin_token(session, organisation, admin)
    auth = {"Authorization": f"Bearer {token}"}
    session.commit()

    def reconcile(*, everything: bool) -> None:
        """A complete listing: with every object, or without `missed` and each kind's first."""
        keys = [missed, kept] if everything else [kept]
        lists: dict[str, list[dict[str, Any]]] = {
            "keys": [listed(k, key_body(owner)) for k in keys]
        }
        for kind, ids in objects.items():
            shown = ids if everything else ids[1:]
            lists[kind] = [listed(i, owned(kind, owner.email, kind)) for i in shown]
        httpserver.clear()
        listing(httpserver, bridged.org.id, lists)
        run = odock_reconcile.reconcile_from_management_plane(
            engine, bridged_settings, bridged.org.id
        )
        assert run.status == "succeeded", run.summary

    def shown() -> dict[str, Any]:
        detail = client.get(f"/api/v1/users/{owner.id}", headers=auth)
        preview = client.get(f"/api/v1/users/{owner.id}/revocation-preview", headers=auth)
        assert detail.status_code == 200 and preview.status_code == 200, preview.text
        return {"detail": detail.get_json(), "preview": preview.get_json()}

    reconcile(everything=False)

    views = shown()
    keys = by_id(views["detail"]["api_keys"])
    assert unseen_of(keys[str(missed)]) == (True, 1)
    assert unseen_of(keys[str(kept)]) == (False, 0)
    for kind, (lacked, listed_id) in objects.items():
        held = by_id(views["detail"][kind])
        assert unseen_of(held[str(lacked)]) == (True, 1), kind
        assert unseen_of(held[str(listed_id)]) == (False, 0), kind
        previewed = by_id(views["preview"][kind])
        assert unseen_of(previewed[str(lacked)]) == (True, 1), kind
    assert unseen_of(by_id(views["preview"]["keys"])[str(missed)]) == (True, 1)

    review_id = revoke(session, owner.id)
    findings = by_id_subject(client.get(f"/api/v1/reviews/{review_id}", headers=auth).get_json())
    assert unseen_of(findings[str(missed)], "subject_") == (True, 1)
    assert unseen_of(findings[str(kept)], "subject_") == (False, 0)
    for kind, (lacked, listed_id) in objects.items():
        assert unseen_of(findings[str(lacked)], "subject_") == (True, 1), kind
        assert unseen_of(findings[str(listed_id)], "subject_") == (False, 0), kind
    one = client.get(f"/api/v1/findings/{findings[str(missed)]['id']}", headers=auth).get_json()
    assert unseen_of(one, "subject_") == (True, 1)
    since = findings[str(missed)]["subject_unseen_since"]
    page = console_review(client, token, review_id)
    assert f"Odock's last listing did not include this key since {since}" in page
    assert page.count("Odock's last listing did not include this") == 3

    reconcile(everything=True)

    views = shown()
    for held in [views["detail"]["api_keys"], *(views["detail"][kind] for kind in objects)]:
        assert {unseen_of(item) for item in held} == {(False, 0)}
    findings = by_id_subject(client.get(f"/api/v1/reviews/{review_id}", headers=auth).get_json())
    assert {unseen_of(item, "subject_") for item in findings.values()} == {(False, 0)}
    assert "Odock's last listing" not in console_review(client, token, review_id)


def revoke(session, user_id: uuid.UUID) -> uuid.UUID:
    revocation = lifecycle.revoke(session, user=session.get_one(User, user_id), actor=f.SETUP)
    session.commit()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
    return review.id


def by_id_subject(review: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {finding["subject_id"]: finding for finding in review["findings"]}


def console_review(client, token: str, review_id: uuid.UUID) -> str:
    from tests.console.conftest import sign_in

    sign_in(client, token)
    answer = client.get(f"/console/reviews/{review_id}")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)
