"""Applying events through the shared operations: mapping, matching, ordering, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models.actions import idp_events, lifecycle
from models.actions.identities import find_link, link_identity
from models.entities import AuditEvent, OutboxMessage, ReceivedDelivery, Revocation
from models.enums import Source, TeamRole, UserStatus
from tests.events import okta_payloads as okta
from tests.events.conftest import generic
from tests.support import factories as f

OKTA_ID = "00u1qw1mqitPHM8AJ0g8"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def process(session, org, payload, channel="okta", delivery_id=None) -> ReceivedDelivery:
    recorded = idp_events.accept_delivery(
        session,
        organisation_id=org.id,
        channel=channel,
        delivery_id=delivery_id or payload.get("eventId") or payload.get("id"),
        payload=payload,
    )
    idp_events.process_delivery(session, delivery=recorded.delivery)
    session.flush()
    return recorded.delivery


def okta_user(session, org, **kwargs):
    user = f.make_user(session, org, email="jane.doe@example.com", name="Jane Doe", **kwargs)
    link_identity(session, user=user, source=Source.OKTA, external_id=OKTA_ID, actor=f.SETUP)
    return user


def okta_event(event_type, published=T0, extra_targets=(), email="jane.doe@example.com", **kw):
    targets = [okta.user_target(OKTA_ID, email, kw.pop("name", "Jane Doe")), *extra_targets]
    return okta.event(event_type, targets, published=published, **kw)


def outcomes(delivery) -> list[str]:
    return [result["outcome"] for result in delivery.results]


def test_okta_deactivate_revokes_through_the_shared_operation_and_opens_a_review(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    key = f.make_key(session, org, owner=user)

    delivery = process(session, org, okta.delivery(okta_event("user.lifecycle.deactivate")))

    assert delivery.status == "processed" and outcomes(delivery) == ["applied"]
    assert delivery.applied_count == 1 and delivery.lag_ms is not None
    session.refresh(key)
    assert user.status is UserStatus.REVOKED and key.revoked
    revocation = session.scalars(select(Revocation)).one()
    assert revocation.source is Source.OKTA and "user.lifecycle.deactivate" in revocation.reason
    tasks = {m.task: m.kwargs for m in session.scalars(select(OutboxMessage))}
    assert tasks["reviews.open_for_revocation"] == {"revocation_id": str(revocation.id)}
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.revoked")).one()
    assert audit.source is Source.OKTA


def test_okta_lifecycle_types_map_to_revoke_and_reactivate(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    steps = [
        ("user.lifecycle.suspend", UserStatus.REVOKED),
        ("user.lifecycle.unsuspend", UserStatus.ACTIVE),
        ("user.lifecycle.deactivate", UserStatus.REVOKED),
        ("user.lifecycle.reactivate", UserStatus.ACTIVE),
        ("user.lifecycle.deactivate", UserStatus.REVOKED),
        ("user.lifecycle.activate", UserStatus.ACTIVE),
    ]
    for minute, (event_type, expected) in enumerate(steps):
        published = T0 + timedelta(minutes=minute)
        delivery = process(session, org, okta.delivery(okta_event(event_type, published)))
        assert outcomes(delivery) == ["applied"], event_type
        assert user.status is expected, event_type


def test_okta_delete_initiated_revokes_and_marks_the_link_deleted(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    process(session, org, okta.delivery(okta_event("user.lifecycle.delete.initiated")))
    assert user.status is UserStatus.REVOKED
    assert find_link(session, org.id, Source.OKTA, OKTA_ID).deleted_at is not None


def test_okta_profile_update_edits_name_and_email(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    event = okta_event(
        "user.account.update_profile", email="jane.smith@example.com", name="Jane Smith"
    )
    delivery = process(session, org, okta.delivery(event))
    assert outcomes(delivery) == ["applied"]
    assert (user.name, user.email) == ("Jane Smith", "jane.smith@example.com")


def test_okta_group_membership_add_and_remove(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    team = f.make_team(session, org, "Platform")
    group = okta.group_target("00g3vcxkvkIPY52jL4x7", "Platform")
    added = process(
        session, org, okta.delivery(okta_event("group.user_membership.add", extra_targets=[group]))
    )
    assert outcomes(added) == ["applied"]
    assert [m.user_id for m in team.memberships] == [user.id]
    assert team.memberships[0].source is Source.OKTA
    removed = process(
        session,
        org,
        okta.delivery(
            okta_event(
                "group.user_membership.remove", T0 + timedelta(seconds=1), extra_targets=[group]
            )
        ),
    )
    assert outcomes(removed) == ["applied"]
    session.refresh(team)
    assert team.memberships == []


def test_a_revoked_persons_group_membership_is_recorded_and_there_on_reactivation(session):
    """Guard for the rule that refuses an admin's add of a REVOKED person (teams.add_to_team):
    the provider's group membership is its state, recorded whatever the person's status, and
    the person an admin brings back finds it."""
    org = f.make_org(session)
    user = okta_user(session, org)
    team = f.make_team(session, org, "Platform")
    lifecycle.revoke(session, user=user, actor=f.SETUP)
    group = okta.group_target("00g3vcxkvkIPY52jL4x7", "Platform")
    added = process(
        session, org, okta.delivery(okta_event("group.user_membership.add", extra_targets=[group]))
    )
    assert outcomes(added) == ["applied"]
    assert [(m.user_id, m.source) for m in team.memberships] == [(user.id, Source.OKTA)]
    assert lifecycle.reactivate(session, user=user, actor=f.SETUP) is lifecycle.Outcome.APPLIED
    session.flush()
    session.refresh(team)
    assert user.status is UserStatus.ACTIVE
    assert [m.user_id for m in team.memberships] == [user.id]


def test_group_add_never_demotes_a_team_manager(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    team = f.make_team(session, org, "Platform")
    f.add_member(session, team, user, TeamRole.MANAGER)
    group = okta.group_target("00g3", "Platform")
    delivery = process(
        session, org, okta.delivery(okta_event("group.user_membership.add", extra_targets=[group]))
    )
    assert outcomes(delivery) == ["unchanged"]
    assert team.memberships[0].role is TeamRole.MANAGER


def test_unknown_types_unknown_teams_and_unknown_users_are_recorded_and_ignored(session):
    org = f.make_org(session)
    okta_user(session, org)
    stranger = okta.user_target("00uSTRANGER", "nobody@example.com")
    delivery = process(
        session,
        org,
        okta.delivery(
            okta_event("user.session.start"),
            okta_event(
                "group.user_membership.add", extra_targets=[okta.group_target("00g", "Nope")]
            ),
            okta.event("user.lifecycle.deactivate", [stranger], published=T0),
        ),
    )
    assert [(r["outcome"], r["detail"]) for r in delivery.results] == [
        ("ignored", "event type not handled"),
        ("ignored", "unknown team"),
        ("ignored", "unknown user"),
    ]
    assert delivery.applied_count == 0
    assert session.scalars(select(Revocation)).all() == []


def test_another_organisations_user_is_never_touched(session):
    org, other = f.make_org(session), f.make_org(session)
    theirs = okta_user(session, other)  # same Okta id and email, but in the other organisation
    delivery = process(session, org, okta.delivery(okta_event("user.lifecycle.deactivate")))
    assert outcomes(delivery) == ["ignored"]
    assert theirs.status is UserStatus.ACTIVE


def test_matching_falls_back_to_email_and_links_the_okta_id(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="Jane.Doe@example.com")
    process(session, org, okta.delivery(okta_event("user.lifecycle.suspend")))
    assert user.status is UserStatus.REVOKED
    assert find_link(session, org.id, Source.OKTA, OKTA_ID).user_id == user.id


def test_email_of_someone_linked_to_another_okta_id_is_not_matched(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="jane.doe@example.com")
    link_identity(session, user=user, source=Source.OKTA, external_id="00uOTHER", actor=f.SETUP)
    delivery = process(session, org, okta.delivery(okta_event("user.lifecycle.deactivate")))
    assert outcomes(delivery) == ["ignored"] and user.status is UserStatus.ACTIVE


def test_okta_users_provisioned_by_scim_are_found_by_their_scim_link(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="someone.else@example.com")
    link_identity(session, user=user, source=Source.SCIM, external_id=OKTA_ID, actor=f.SETUP)
    process(session, org, okta.delivery(okta_event("user.lifecycle.deactivate")))
    assert user.status is UserStatus.REVOKED


def test_an_older_event_arriving_late_does_not_undo_a_newer_one(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    newer = okta_event("user.lifecycle.deactivate", T0 + timedelta(minutes=5))
    older = okta_event("user.lifecycle.activate", T0)
    process(session, org, okta.delivery(newer))
    late = process(session, org, okta.delivery(older))
    assert outcomes(late) == ["stale"]
    assert user.status is UserStatus.REVOKED


def test_ordering_is_per_aspect_so_other_teams_are_not_blocked(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    a, b = f.make_team(session, org, "A"), f.make_team(session, org, "B")
    join_b = okta_event(
        "group.user_membership.add", T0 + timedelta(minutes=2), [okta.group_target("g-b", "B")]
    )
    join_a = okta_event("group.user_membership.add", T0, [okta.group_target("g-a", "A")])
    status_late = okta_event("user.lifecycle.suspend", T0 - timedelta(minutes=1))
    delivery = process(session, org, okta.delivery(join_b, join_a, status_late))
    assert outcomes(delivery) == ["applied", "applied", "applied"]
    assert {m.team_id for m in user_memberships(session, user)} == {a.id, b.id}


def user_memberships(session, user):
    from models.entities import TeamMembership

    return session.scalars(select(TeamMembership).where(TeamMembership.user_id == user.id)).all()


def test_generic_events_drive_the_same_operations(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="ada@example.com", name="Ada")
    team = f.make_team(session, org, "Research")
    ref = {"external_id": "hr-42", "email": "ada@example.com"}
    events = [
        generic(
            "membership.added",
            user=ref,
            team={"name": "Research"},
            occurred_at="2026-11-01T09:00:00Z",
        ),
        generic(
            "user.updated",
            user=ref,
            changes={"name": "Ada Lovelace"},
            occurred_at="2026-11-01T09:01:00Z",
        ),
        generic("user.deactivated", user=ref, occurred_at="2026-11-01T09:02:00Z"),
        generic(
            "membership.removed",
            user=ref,
            team={"name": "research"},
            occurred_at="2026-11-01T09:03:00Z",
        ),
        generic(
            "user.reactivated", user={"external_id": "hr-42"}, occurred_at="2026-11-01T09:04:00Z"
        ),
    ]
    delivery = process(session, org, {"events": events}, channel="events", delivery_id="msg_1")
    assert outcomes(delivery) == ["applied"] * 5, delivery.results
    assert user.name == "Ada Lovelace" and user.status is UserStatus.ACTIVE
    session.refresh(team)
    assert team.memberships == []
    assert find_link(session, org.id, Source.EVENTS, "hr-42").user_id == user.id
    sources = set(
        session.scalars(select(AuditEvent.source).where(AuditEvent.target_id == str(user.id)))
    )
    assert Source.EVENTS in sources


def test_generic_events_that_break_the_schema_are_rejected_and_unknown_types_ignored(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="ada@example.com")
    events = [
        {"id": "e1", "type": "user.deactivated", "user": {"email": "ada@example.com"}},  # no time
        generic("user.deactivated", user={}),
        generic("user.updated", user={"email": "ada@example.com"}),  # no changes
        generic("membership.added", user={"email": "ada@example.com"}),  # no team
        generic("user.deactivated", user={"email": "ada@example.com"}, occurred_at="yesterday"),
        generic("user.deactivated", user={"email": "ada@example.com"}, surprise=True),
        generic("user.promoted", user={"email": "ada@example.com"}, anything={"goes": 1}),
    ]
    delivery = process(session, org, {"events": events}, channel="events", delivery_id="msg_2")
    assert outcomes(delivery) == ["rejected"] * 6 + ["ignored"]
    assert "occurred_at" in delivery.results[0]["detail"]
    assert user.status is UserStatus.ACTIVE


EDGE_OF_TIME = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]  # UTC cannot hold


def test_times_utc_cannot_hold_are_rejected_alone(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    generic_events = [
        generic("user.deactivated", user={"email": user.email}, occurred_at=moment)
        for moment in EDGE_OF_TIME
    ]
    delivery = process(session, org, {"events": generic_events}, "events", delivery_id="m_edge")
    assert outcomes(delivery) == ["rejected", "rejected"]
    assert "out of range" in delivery.results[0]["detail"]
    okta_events = [
        {**okta_event("user.lifecycle.deactivate"), "published": m} for m in EDGE_OF_TIME
    ]
    good = okta_event("user.lifecycle.deactivate")
    delivery = process(session, org, okta.delivery(*okta_events, good))
    assert outcomes(delivery) == ["rejected", "rejected", "applied"]
    assert user.status is UserStatus.REVOKED


def test_a_refused_change_is_rejected_without_spoiling_the_rest(session):
    org = f.make_org(session)
    user = f.make_user(session, org, email="ada@example.com")
    f.make_user(session, org, email="taken@example.com")
    events = [
        generic(
            "user.updated",
            user={"email": "ada@example.com"},
            changes={"email": "taken@example.com"},
        ),
        generic("user.deactivated", user={"email": "ada@example.com"}),
    ]
    delivery = process(session, org, {"events": events}, channel="events", delivery_id="msg_3")
    assert outcomes(delivery) == ["rejected", "applied"]
    assert "already exists" in delivery.results[0]["detail"]
    assert user.email == "ada@example.com" and user.status is UserStatus.REVOKED


def test_an_email_change_to_an_address_with_an_invisible_character_is_rejected(session):
    """ "ada@example.com" with a zero-width space or a bidi override would be a second address
    that looks like the first: the event is rejected (saying why), the rest applies."""
    org = f.make_org(session)
    user = f.make_user(session, org, email="ada@example.com", name="Ada")
    events = [
        generic(
            "user.updated",
            user={"email": "ada@example.com"},
            changes={"email": spoof},
            occurred_at=f"2026-11-01T09:0{n}:00Z",
        )
        for n, spoof in enumerate(["ad\u200ba@example.com", "\u202eada@example.com"])
    ]
    events.append(
        generic(
            "user.updated",
            user={"email": "ada@example.com"},
            changes={"name": "Ada \u202eecalevol"},  # a name: kept, shown marked
            occurred_at="2026-11-01T09:05:00Z",
        )
    )
    delivery = process(session, org, {"events": events}, channel="events", delivery_id="msg_cf")
    assert outcomes(delivery) == ["rejected", "rejected", "applied"], delivery.results
    assert "invisible" in delivery.results[0]["detail"]
    assert user.email == "ada@example.com" and user.name == "Ada \u202eecalevol"


def test_an_okta_event_whose_target_is_not_a_list_is_rejected_alone(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    broken = [{**okta_event("user.lifecycle.deactivate"), "target": value} for value in (5, True)]
    good = okta_event("user.lifecycle.deactivate", published=T0 + timedelta(minutes=1))
    delivery = process(session, org, okta.delivery(*broken, good))
    assert outcomes(delivery) == ["rejected", "rejected", "applied"]
    assert user.status is UserStatus.REVOKED


def test_a_payload_that_cannot_be_read_marks_the_delivery_rejected(session):
    org = f.make_org(session)
    delivery = process(session, org, {"data": {"events": "nope"}}, delivery_id="bad")
    assert delivery.status == "rejected" and "data.events" in delivery.outcome


def test_reprocessing_applies_what_was_missing_and_nothing_twice(session):
    org = f.make_org(session)
    payload = okta.delivery(okta_event("user.lifecycle.deactivate"))
    delivery = process(session, org, payload)
    assert outcomes(delivery) == ["ignored"]

    user = okta_user(session, org)
    idp_events.reprocess_delivery(session, delivery=delivery, actor=f.SETUP)
    assert delivery.status == "received"
    idp_events.process_delivery(session, delivery=delivery)
    assert outcomes(delivery) == ["applied"] and user.status is UserStatus.REVOKED

    idp_events.reprocess_delivery(session, delivery=delivery, actor=f.SETUP)
    idp_events.process_delivery(session, delivery=delivery)
    assert outcomes(delivery) == ["unchanged"] and delivery.attempts == 3
    assert len(session.scalars(select(Revocation)).all()) == 1


def test_okta_retrying_an_event_in_a_new_delivery_applies_it_once(session):
    """Okta retries a delivery it got no answer to in time; the retry need not carry the same
    eventId, but its events keep their uuid: each applies once."""
    org = f.make_org(session)
    user = okta_user(session, org)
    deactivate = okta_event("user.lifecycle.deactivate")
    first = process(session, org, {**okta.delivery(deactivate), "eventId": "delivery-1"})
    retry = process(session, org, {**okta.delivery(deactivate), "eventId": "delivery-2"})
    assert outcomes(first) == ["applied"] and outcomes(retry) == ["unchanged"]
    assert user.status is UserStatus.REVOKED
    assert len(session.scalars(select(Revocation)).all()) == 1


def test_the_same_okta_event_twice_in_one_delivery_applies_once(session):
    org = f.make_org(session)
    user = okta_user(session, org)
    team = f.make_team(session, org, "Research")
    research = okta.group_target("g-research", "Research")
    join = okta_event("group.user_membership.add", extra_targets=[research])
    delivery = process(session, org, okta.delivery(join, join))
    assert outcomes(delivery) == ["applied", "unchanged"]
    assert [m.team_id for m in user_memberships(session, user)] == [team.id]
