"""Every credential of a leaver: the organisation keys they created, the budgets and quotas
their keys own, their admin-API tokens; and no reactivation re-enables a key used after the
revocation unless an admin says so (issue 20, item 3)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models import outbox
from models.access import Viewer
from models.actions import access_end, lifecycle, reviews, tokens
from models.actions.review_sweep import sweep_reviews
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    ApiToken,
    AuditEvent,
    Budget,
    OutboxMessage,
    Quota,
    Revocation,
    User,
    VirtualApiKey,
)
from models.enums import (
    FindingState,
    KeyPolicy,
    KeyType,
    OwnerType,
    Severity,
    Source,
    TokenScope,
    UserStatus,
)
from models.queries.departures import upcoming_departures
from models.queries.reviews import revocation_preview
from tests.reviews.conftest import REVIEWER, build_leaver, findings_by_kind, revoke_and_review
from tests.support import factories as f
from tests.support.worker import settings_env


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


def test_the_preview_promises_what_the_revocation_does_to_org_keys_and_tokens(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    _owned_by_key(session, world, org_key)

    f.admin_token(session, world.org, world.person)

    preview = revocation_preview(session, Viewer.operator(world.org.id), world.person.id)

    assert [k["id"] for k in preview["org_keys"]] == [str(org_key.id)]
    assert preview["org_keys"][0]["action"] == "hold_for_review"
    assert preview["policy"]["org_keys"] == "hold"
    assert "key budget" in [b["name"] for b in preview["budgets"]]
    assert [t["action"] for t in preview["admin_tokens"]] == ["revoke"]


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


# --- admin-API tokens ---------------------------------------------------------------------


def test_the_leavers_admin_tokens_are_revoked_listed_and_not_revived(session):
    world = build_leaver(session)
    theirs = f.admin_token(session, world.org, world.person)
    admins = f.admin_token(session, world.org, world.admin)
    session.flush()

    review = revoke_and_review(session, world.person)

    assert tokens.authenticate(session, secret=theirs, scope=TokenScope.ADMIN) is None
    assert tokens.authenticate(session, secret=admins, scope=TokenScope.ADMIN) is not None
    (finding,) = findings_by_kind(review)["admin_token"]
    token = session.get(ApiToken, finding.subject_id)
    assert token.user_id == world.person.id
    assert token.revoked_by_revocation_id == review.revocation_id
    assert finding.action == "revoked" and finding.state is FindingState.RESOLVED
    revoked_audit = session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "user.revoked")
    ).one()
    assert revoked_audit["tokens_revoked"] == [str(token.id)]

    lifecycle.reactivate(session, user=world.person, actor=f.SETUP)

    assert tokens.authenticate(session, secret=theirs, scope=TokenScope.ADMIN) is None
    assert session.get(ApiToken, token.id).revoked_at is not None


# --- reactivation and keys used after the revocation --------------------------------------


def _used_after_revocation(session, world):
    review = revoke_and_review(session, world.person)
    record = f.make_usage(session, world.org, world.person, world.key_a)
    record.occurred_at = session.get(Revocation, review.revocation_id).revoked_at + timedelta(
        seconds=5
    )
    session.flush()
    reviews.refresh_review(session, review=review, actor=REVIEWER)
    (usage,) = findings_by_kind(review)["usage_after_revocation"]
    assert usage.state is FindingState.OPEN
    return review, usage


def test_reactivation_refuses_to_re_enable_a_key_used_after_the_revocation(session):
    world = build_leaver(session)
    _, usage = _used_after_revocation(session, world)

    outcome = lifecycle.reactivate(session, user=world.person, actor=f.SETUP)

    assert outcome is lifecycle.Outcome.REFUSED
    assert session.get(User, world.person.id).status is UserStatus.REVOKED
    assert session.get(VirtualApiKey, world.key_a.id).revoked is True
    assert usage.state is FindingState.OPEN
    refused = session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "user.reactivation_refused")
    ).one()
    assert refused["keys_used_after_revocation"] == [str(world.key_a.id)]


def test_an_admin_may_restore_a_used_key_explicitly_and_it_is_audited(session):
    world = build_leaver(session)
    _used_after_revocation(session, world)

    outcome = lifecycle.reactivate(
        session, user=world.person, actor=f.SETUP, restore_used_keys=True
    )

    assert outcome is lifecycle.Outcome.APPLIED
    assert session.get(VirtualApiKey, world.key_a.id).revoked is False
    done = session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "user.reactivated")
    ).one()
    assert done["restored_despite_usage"] == [str(world.key_a.id)]


def test_a_non_admin_source_cannot_pass_the_override(session):
    world = build_leaver(session)
    scim = Actor(Source.SCIM, "idp")
    lifecycle.revoke(session, user=world.person, actor=scim)
    revocation = lifecycle.latest_revocation(session, world.person.id)
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)
    record = f.make_usage(session, world.org, world.person, world.key_a)
    record.occurred_at = revocation.revoked_at + timedelta(seconds=5)
    session.flush()
    reviews.refresh_review(session, review=review, actor=REVIEWER)

    outcome = lifecycle.reactivate(session, user=world.person, actor=scim, restore_used_keys=True)

    assert outcome is lifecycle.Outcome.REFUSED
    assert session.get(VirtualApiKey, world.key_a.id).revoked is True


def test_once_the_usage_finding_is_closed_reactivation_goes_ahead(session):
    world = build_leaver(session)
    _, usage = _used_after_revocation(session, world)
    reviews.dismiss_finding(session, finding=usage, actor=f.SETUP, note="our own test traffic")

    assert lifecycle.reactivate(session, user=world.person, actor=f.SETUP) is (
        lifecycle.Outcome.APPLIED
    )
    assert session.get(VirtualApiKey, world.key_a.id).revoked is False


def test_the_api_answers_409_and_accepts_the_flag(session, client):
    world = build_leaver(session)
    _used_after_revocation(session, world)
    admin = f.admin_token(session, world.org, world.admin)
    outbox.take_new_messages(session)
    session.commit()
    path = f"/api/v1/users/{world.person.id}/reactivate"
    headers = {"Authorization": f"Bearer {admin}"}

    refused = client.post(path, headers=headers)
    bad = client.post(path, headers=headers, json={"restore_used_keys": "perhaps"})
    done = client.post(path, headers=headers, json={"restore_used_keys": True})

    assert refused.status_code == 409, refused.get_json()
    assert refused.mimetype == "application/problem+json"
    assert "restore_used_keys" in refused.get_json()["detail"]
    assert bad.status_code == 400
    assert done.status_code == 200 and done.get_json()["status"] == "ACTIVE"
    session.expire_all()
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("user.reactivat%"))
    ).all()
    assert sorted(actions) == ["user.reactivated", "user.reactivation_refused"]


def test_the_cli_refuses_and_accepts_the_option(session, settings):
    world = build_leaver(session)
    _used_after_revocation(session, world)
    outbox.take_new_messages(session)
    session.commit()
    runner = CliRunner(env=settings_env(settings))
    args = ["users", "reactivate", "--org", world.org.slug, world.person.email]

    refused = runner.invoke(main, args)
    done = runner.invoke(main, [*args, "--restore-used-keys", "--json"])

    assert refused.exit_code != 0 and "restore" in refused.output
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "ACTIVE"
    session.expire_all()
    assert session.get(VirtualApiKey, world.key_a.id).revoked is False


def test_the_sweep_finds_usage_on_an_org_key_the_review_has_not_seen(session):
    world = build_leaver(session)
    org_key = _org_key(session, world)
    review = revoke_and_review(session, world.person)
    assert "usage_after_revocation" not in findings_by_kind(review)
    record = f.make_usage(session, world.org, world.admin, org_key)  # someone else's request
    record.user_id = None
    record.occurred_at = session.get(Revocation, review.revocation_id).revoked_at + timedelta(
        seconds=5
    )
    session.flush()

    result = sweep_reviews(session, actor=REVIEWER, organisation_id=world.org.id)

    assert str(review.id) in result.updated
    session.refresh(review)
    (usage,) = findings_by_kind(review)["usage_after_revocation"]
    assert usage.subject_id == org_key.id and usage.severity is Severity.URGENT


def test_a_status_edit_that_would_reactivate_a_used_key_is_refused_and_changes_nothing(
    session, client
):
    world = build_leaver(session)
    _used_after_revocation(session, world)
    admin = f.admin_token(session, world.org, world.admin)
    outbox.take_new_messages(session)
    session.commit()

    response = client.patch(
        f"/api/v1/users/{world.person.id}",
        headers={"Authorization": f"Bearer {admin}"},
        json={"status": "ACTIVE", "name": "Renamed"},
    )

    assert response.status_code == 409, response.get_json()
    assert "restore_used_keys" in response.get_json()["detail"]
    session.expire_all()
    person = session.get(User, world.person.id)
    assert person.status is UserStatus.REVOKED and person.name != "Renamed"
    assert session.get(VirtualApiKey, world.key_a.id).revoked is True


def test_the_departures_list_counts_what_the_preview_lists(session):
    """A leaver whose end date is near: the departures list counts their keys, budgets and
    quotas as the blast-radius preview (key_scope) lists them, the ones their keys own
    included; before, it counted only what named the person (2 of 6 here)."""
    world = build_leaver(session)
    org_key = _org_key(session, world)
    _owned_by_key(session, world, world.key_a)
    _owned_by_key(session, world, org_key)
    _owned_by_key(session, world, world.other_key)  # a bystander's key: not the leaver's
    now = utcnow()
    access_end.set_access_end(
        session, user=world.person, ends_at=now + timedelta(days=3), actor=f.SETUP
    )
    viewer = Viewer.operator(world.org.id)

    (departure,) = upcoming_departures(session, viewer, now=now).departures
    preview = revocation_preview(session, viewer, world.person.id)

    assert departure.own_keys == len(preview["keys"]) == 2
    assert departure.created_keys == len(preview["team_keys"] + preview["org_keys"]) == 2
    assert departure.budgets_and_quotas == len(preview["budgets"] + preview["quotas"]) == 6
