"""Every credential of a leaver: the organisation keys they created, the budgets and quotas
their keys own (issue 20, item 3)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from models.access import Viewer
from models.actions import lifecycle, reviews
from models.entities import Budget, OutboxMessage, Quota, VirtualApiKey
from models.enums import FindingState, KeyPolicy, KeyType, OwnerType, Severity
from models.queries.reviews import revocation_preview
from tests.reviews.conftest import REVIEWER, build_leaver, findings_by_kind, revoke_and_review
from tests.support import factories as f


def _org_key(session, world):
    return f.make_key(session, world.org, created_by=world.person, key_type=KeyType.ORGANISATION)


def _owned_by_key(session, world, key):
    budget = Budget(
        organisation_id=world.org.id,
        owner_type=OwnerType.APIKEY,
        owner_id=key.id,
        name="key budget",
        amount=Decimal("50"),
    )
    quota = Quota(
        organisation_id=world.org.id,
        owner_type=OwnerType.APIKEY,
        owner_id=key.id,
        name="key quota",
        limit=10,
    )
    session.add_all([budget, quota])
    session.flush()
    return budget, quota


def _alerts(session):
    return [
        message.kwargs
        for message in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task == "notifications.dispatch")
        )
    ]


def test_an_organisation_key_the_leaver_created_is_held_with_an_urgent_finding(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    someone_elses = f.make_key(
        session, world.org, created_by=world.admin, key_type=KeyType.ORGANISATION
    )

    review = revoke_and_review(session, world.person)

    (finding,) = findings_by_kind(review)["org_key"]
    assert finding.subject_id == org_key.id
    assert finding.severity is Severity.URGENT and finding.state is FindingState.OPEN
    assert finding.action == "hold_for_review" and not finding.action_taken
    assert session.get(VirtualApiKey, org_key.id).revoked is False
    assert session.get(VirtualApiKey, someone_elses.id).revoked is False
    urgent = [a for a in _alerts(session) if a["event"] == "finding.urgent"]
    assert len(urgent) == 1


def test_org_key_policy_revoke_revokes_them_with_the_person(session):
    world = build_leaver(session)
    world.org.settings.org_key_policy = KeyPolicy.REVOKE
    org_key = _org_key(session, world)

    review = revoke_and_review(session, world.person)

    key = session.get(VirtualApiKey, org_key.id)
    assert key.revoked and key.revoked_by_revocation_id == review.revocation_id
    (finding,) = findings_by_kind(review)["org_key"]
    # revoked, and done once the gateway has forgotten it (a cut-off with a deadline)
    assert finding.action == "revoked" and finding.state is FindingState.OPEN
    assert finding.invalidation_status == "pending"
    reviews.record_invalidation(session, key_ids=[org_key.id], reason="revoked")
    assert finding.state is FindingState.RESOLVED
    invalidated = session.scalars(
        select(OutboxMessage.kwargs).where(OutboxMessage.task == "gateway.invalidate_keys")
    ).all()
    assert str(org_key.id) in invalidated[0]["key_ids"]


def test_reactivation_restores_an_org_key_the_revocation_disabled(session):
    world = build_leaver(session)
    world.org.settings.org_key_policy = KeyPolicy.REVOKE
    org_key = _org_key(session, world)
    lifecycle.revoke(session, user=world.person, actor=f.SETUP)

    lifecycle.reactivate(session, user=world.person, actor=f.SETUP)

    assert session.get(VirtualApiKey, org_key.id).revoked is False


def test_budgets_and_quotas_owned_by_the_leavers_keys_are_flagged(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    on_user_key = _owned_by_key(session, world, world.key_a)
    on_org_key = _owned_by_key(session, world, org_key)
    bystanders = _owned_by_key(session, world, world.other_key)

    review = revoke_and_review(session, world.person)

    kinds = findings_by_kind(review)
    flagged = {fi.subject_id for fi in kinds["budget"] + kinds["quota"]}
    assert {row.id for row in on_user_key + on_org_key} <= flagged
    assert not {row.id for row in bystanders} & flagged
    assert len(flagged) == 6  # with the budget and quota the person owns
    assert {fi.action for fi in kinds["budget"] + kinds["quota"]} == {"transfer"}


def test_the_preview_promises_what_the_revocation_does_to_org_keys(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    _owned_by_key(session, world, org_key)

    preview = revocation_preview(session, Viewer.operator(world.org.id), world.person.id)

    assert [k["id"] for k in preview["org_keys"]] == [str(org_key.id)]
    assert preview["org_keys"][0]["action"] == "hold_for_review"
    assert preview["policy"]["org_keys"] == "hold"
    assert "key budget" in [b["name"] for b in preview["budgets"]]


def test_usage_on_an_org_key_after_the_revocation_is_urgent(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    revocation = lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    record = f.make_usage(session, world.org, world.admin, org_key)
    record.occurred_at = revocation.revoked_at + timedelta(seconds=5)
    session.flush()

    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)

    (usage,) = findings_by_kind(review)["usage_after_revocation"]
    assert usage.subject_id == org_key.id and usage.severity is Severity.URGENT
    assert usage.detail["key_still_active"] is True
