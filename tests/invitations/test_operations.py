"""The invitation rules, one by one, through the domain operations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.access import Viewer
from models.actions import invitations as inv
from models.actions.lifecycle import approve
from models.actor import Actor
from models.base import utcnow
from models.entities import (
    AuditEvent,
    IdentityLink,
    Invitation,
    OutboxMessage,
    TeamMembership,
    User,
)
from models.enums import InvitationStatus, Role, Source, TeamRole, UserStatus
from models.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, RateLimited
from models.secrets import hash_secret
from tests.support import factories as f


def test_invite_stores_only_the_hash_and_queues_delivery(session, scene):
    issued = scene.invite(session, teams=[inv.TeamInvite(scene.team.id)])
    session.commit()
    row = session.get(Invitation, issued.invitation.id)
    assert issued.token.startswith("inv_") and len(issued.token) == 47
    assert row.token_hash == hash_secret(issued.token)
    stored = " ".join(str(v) for v in row.__dict__.values())
    assert issued.token not in stored
    assert row.status is InvitationStatus.PENDING
    assert row.teams == [{"team_id": str(scene.team.id), "role": "MEMBER"}]
    lifetime = row.expires_at - row.created_at
    assert timedelta(hours=167) < lifetime <= timedelta(hours=168)
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.task == inv.TASK_DELIVER))
    assert message.kwargs == {"invitation_id": str(row.id), "send_number": 1}
    assert issued.token not in str(message.kwargs)
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "invitation.created"))


def test_tokens_are_distinct_and_rederivable(session, scene):
    first = scene.invite(session, "a@example.com")
    second = scene.invite(session, "b@example.com")
    assert first.token != second.token
    assert inv.link_token(scene.secret_key, first.invitation) == first.token
    assert inv.link_token("another-key", first.invitation) != first.token


def test_expiry_within_bounds(session, scene):
    issued = scene.invite(session, expires_in_hours=1)
    assert issued.invitation.expires_at - utcnow() <= timedelta(hours=1)
    for hours in (0, 721):
        with pytest.raises(InvalidInput):
            scene.invite(session, f"x{hours}@example.com", expires_in_hours=hours)


def test_conflict_for_active_user_and_pending_invitation(session, scene):
    with pytest.raises(Conflict, match="ACTIVE"):
        scene.invite(session, scene.member.email.upper())
    scene.invite(session, "dup@example.com")
    with pytest.raises(Conflict, match="pending invitation"):
        scene.invite(session, "DUP@example.com")


def test_overdue_pending_invitation_does_not_block_a_new_one(session, scene):
    old = scene.invite(session, "late@example.com").invitation
    old.expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    scene.invite(session, "late@example.com")
    session.refresh(old)
    assert old.status is InvitationStatus.EXPIRED


def test_roles_who_may_invite(session, scene):
    m = scene.manager_viewer
    issued = scene.invite(
        session, "m1@example.com", viewer=m, teams=[inv.TeamInvite(scene.team.id)]
    )
    assert issued.invitation.invited_by_user_id == scene.manager.id
    with pytest.raises(Forbidden):  # not a User role
        scene.invite(
            session,
            "m2@example.com",
            viewer=m,
            role=Role.MANAGER,
            teams=[inv.TeamInvite(scene.team.id)],
        )
    with pytest.raises(Forbidden):  # no team
        scene.invite(session, "m3@example.com", viewer=m)
    with pytest.raises(Forbidden):  # a team they do not manage
        scene.invite(
            session, "m4@example.com", viewer=m, teams=[inv.TeamInvite(scene.other_team.id)]
        )
    with pytest.raises(Forbidden):  # a team manager role
        scene.invite(
            session,
            "m5@example.com",
            viewer=m,
            teams=[inv.TeamInvite(scene.team.id, TeamRole.MANAGER)],
        )
    with pytest.raises(Forbidden):
        scene.invite(session, "u1@example.com", viewer=Viewer.for_user(scene.member))
    admin_any = scene.invite(session, "boss@example.com", role=Role.ORG_ADMIN)
    assert admin_any.invitation.role is Role.ORG_ADMIN
    with pytest.raises(InvalidInput):
        scene.invite(session, "root@example.com", role=Role.SUPER_ADMIN)


def test_accept_creates_active_user_with_role_and_teams(session, scene):
    issued = scene.invite(
        session, role=Role.MANAGER, teams=[inv.TeamInvite(scene.team.id, TeamRole.MANAGER)]
    )
    session.commit()
    accepted = inv.accept_invitation(
        session, token=issued.token, email="New.Person@example.com", name="New Person"
    )
    session.commit()
    user = session.get(User, accepted.user.id)
    assert (user.status, user.role, user.name) == (UserStatus.ACTIVE, Role.MANAGER, "New Person")
    membership = session.get(TeamMembership, (scene.team.id, user.id))
    assert membership.role is TeamRole.MANAGER and membership.source is Source.INVITATION
    row = session.get(Invitation, issued.invitation.id)
    assert row.status is InvitationStatus.ACCEPTED and row.accepted_by_user_id == user.id
    link = session.scalar(select(IdentityLink).where(IdentityLink.user_id == user.id))
    assert (link.source, link.external_id) == (Source.INVITATION, str(row.id))


def test_accept_with_approval_required_leaves_user_pending(session, scene):
    scene.org.settings.approval_required = True
    issued = scene.invite(session)
    session.commit()
    accepted = inv.accept_invitation(
        session, token=issued.token, email="new.person@example.com", name="Pat"
    )
    assert accepted.user.status is UserStatus.PENDING
    approve(session, user=accepted.user, actor=Actor(Source.ADMIN, "ada"))
    session.commit()
    approved = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.approved"))
    assert approved.after["invitation_id"] == str(issued.invitation.id)


def test_accept_links_an_existing_pending_user(session, scene):
    pending = f.make_user(session, scene.org, email="wait@example.com", status=UserStatus.PENDING)
    issued = scene.invite(session, "wait@example.com", role=Role.MANAGER)
    session.commit()
    accepted = inv.accept_invitation(
        session, token=issued.token, email="wait@example.com", name="W"
    )
    assert accepted.user.id == pending.id and not accepted.created
    assert (accepted.user.status, accepted.user.role) == (UserStatus.ACTIVE, Role.MANAGER)
    session.flush()
    approved = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.approved"))
    assert approved.after["invitation_id"] == str(issued.invitation.id)


def _assert_unchanged(session, invitation_id, status=InvitationStatus.PENDING):
    session.rollback()
    assert session.get(Invitation, invitation_id).status is status
    assert (
        session.scalar(
            select(func.count(User.id)).where(User.email_key == "new.person@example.com")
        )
        == 0
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "inv_",
        "garbage",
        "inv_" + "A" * 43,
        "inv_" + "!" * 43,
        "x" * 5000,
        "inv_" + "A" * 42 + "\u00e9",
    ],
)
def test_unknown_and_malformed_tokens(session, scene, token):
    issued = scene.invite(session)
    session.commit()
    with pytest.raises(inv.InvitationUnknown):
        inv.accept_invitation(session, token=token, email="new.person@example.com", name="N")
    _assert_unchanged(session, issued.invitation.id)


def test_tampered_token_is_unknown(session, scene):
    issued = scene.invite(session)
    session.commit()
    last = "A" if issued.token[-1] != "A" else "B"
    with pytest.raises(inv.InvitationUnknown):
        inv.accept_invitation(
            session, token=issued.token[:-1] + last, email="new.person@example.com", name="N"
        )
    _assert_unchanged(session, issued.invitation.id)


def test_token_of_another_organisation_is_unknown(session, scene):
    issued = scene.invite(session)
    other = f.make_org(session)
    session.commit()
    with pytest.raises(inv.InvitationUnknown):
        inv.accept_invitation(
            session,
            token=issued.token,
            email="new.person@example.com",
            name="N",
            organisation_id=other.id,
        )
    _assert_unchanged(session, issued.invitation.id)


def test_check_order_revoked_before_expired_before_email(session, scene):
    issued = scene.invite(session)
    issued.invitation.expires_at = utcnow() - timedelta(seconds=1)
    inv.revoke(
        session,
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
    )
    session.commit()
    with pytest.raises(inv.InvitationRevoked):
        inv.accept_invitation(session, token=issued.token, email="wrong@example.com", name="N")
    _assert_unchanged(session, issued.invitation.id, InvitationStatus.REVOKED)


def test_expired_and_wrong_account_and_reuse(session, scene):
    expired = scene.invite(session, "old@example.com")
    expired.invitation.expires_at = utcnow() - timedelta(seconds=1)
    fresh = scene.invite(session)
    session.commit()
    with pytest.raises(inv.InvitationExpired):
        inv.accept_invitation(session, token=expired.token, email="wrong@example.com", name="N")
    with pytest.raises(inv.WrongAccount):
        inv.accept_invitation(session, token=fresh.token, email="wrong@example.com", name="N")
    _assert_unchanged(session, fresh.invitation.id)
    inv.accept_invitation(session, token=fresh.token, email="new.person@example.com", name="N")
    session.commit()
    with pytest.raises(inv.InvitationUsed):
        inv.accept_invitation(session, token=fresh.token, email="new.person@example.com", name="N")


def test_bad_name_changes_nothing(session, scene):
    issued = scene.invite(session)
    session.commit()
    with pytest.raises(InvalidInput):
        inv.accept_invitation(session, token=issued.token, email="new.person@example.com", name=" ")
    _assert_unchanged(session, issued.invitation.id)


def test_resend_kills_the_old_token_and_counts(session, scene):
    scene.org.settings.resend_cooldown_seconds = 0
    issued = scene.invite(session)
    session.commit()
    again = inv.resend(
        session,
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
        secret_key=scene.secret_key,
    )
    session.commit()
    assert again.invitation.id == issued.invitation.id and again.token != issued.token
    assert again.invitation.send_count == 2 and again.invitation.resend_count == 1
    with pytest.raises(inv.InvitationUnknown):
        inv.accept_invitation(session, token=issued.token, email="new.person@example.com", name="N")
    session.rollback()
    inv.accept_invitation(session, token=again.token, email="new.person@example.com", name="N")


def test_resend_cooldown_and_daily_cap(session, scene):
    scene.org.settings.resend_cooldown_seconds = 60
    scene.org.settings.resend_daily_cap = 2
    start = utcnow()
    issued = scene.invite(session, now=start)
    args = dict(
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
        secret_key=scene.secret_key,
    )
    with pytest.raises(RateLimited) as cooldown:
        inv.resend(session, now=start + timedelta(seconds=10), **args)
    assert cooldown.value.retry_after == 50
    inv.resend(session, now=start + timedelta(minutes=2), **args)
    inv.resend(session, now=start + timedelta(minutes=4), **args)
    with pytest.raises(RateLimited) as cap:
        inv.resend(session, now=start + timedelta(minutes=6), **args)
    assert 23 * 3600 < cap.value.retry_after <= 24 * 3600
    inv.resend(session, now=start + timedelta(hours=25), **args)


def test_resend_of_expired_reopens_it_but_not_accepted_or_revoked(session, scene):
    scene.org.settings.resend_cooldown_seconds = 0
    issued = scene.invite(session)
    issued.invitation.expires_at = utcnow() - timedelta(seconds=1)
    args = dict(
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
        secret_key=scene.secret_key,
    )
    again = inv.resend(session, **args)
    assert again.invitation.status is InvitationStatus.PENDING
    assert again.invitation.expires_at > utcnow() + timedelta(days=6)
    inv.revoke(
        session,
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
    )
    with pytest.raises(InvalidTransition):
        inv.resend(session, **args)
    with pytest.raises(InvalidTransition):
        inv.revoke(
            session,
            viewer=scene.admin_viewer,
            invitation_id=issued.invitation.id,
            actor=scene.actor(scene.admin_viewer),
        )


def test_expire_overdue_in_batches_with_audit_ids(session, scene):
    now = utcnow()
    overdue = [scene.invite(session, f"o{i}@example.com").invitation for i in range(5)]
    keep = scene.invite(session, "k@example.com").invitation
    for invitation in overdue:
        invitation.expires_at = now - timedelta(hours=1)
    session.commit()
    actor = Actor.schedule("test")
    first = inv.expire_overdue(session, now=now, limit=3, actor=actor)
    second = inv.expire_overdue(session, now=now, limit=3, actor=actor)
    third = inv.expire_overdue(session, now=now, limit=3, actor=actor)
    session.commit()
    assert (first, second, third) == (3, 2, 0)
    session.expire_all()
    assert session.get(Invitation, keep.id).status is InvitationStatus.PENDING
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "invitation.expired")
    ).all()
    assert sorted(len(e.after["ids"]) for e in events) == [2, 3]
    assert {i for e in events for i in e.after["ids"]} == {str(i.id) for i in overdue}
    assert {e.after["count"] for e in events} == {2, 3} and events[0].source.value == "schedule"


def test_refresh_reports_current_status(session, scene):
    a = scene.invite(session, "a@example.com").invitation
    b = scene.invite(session, "b@example.com").invitation
    a.expires_at = utcnow() - timedelta(minutes=1)
    session.commit()
    found = inv.refresh(
        session,
        viewer=scene.admin_viewer,
        invitation_ids=[a.id, b.id],
        actor=scene.actor(scene.admin_viewer),
    )
    assert [i.status for i in found] == [InvitationStatus.EXPIRED, InvitationStatus.PENDING]


def test_accept_refuses_when_the_email_became_an_active_user_meanwhile(session, scene):
    issued = scene.invite(session, "late.joiner@example.com")
    f.make_user(session, scene.org, email="late.joiner@example.com")  # e.g. provisioned by SCIM
    session.commit()
    with pytest.raises(Conflict, match="already has an account"):
        inv.accept_invitation(
            session, token=issued.token, email="late.joiner@example.com", name="L"
        )
    session.rollback()
    assert session.get(Invitation, issued.invitation.id).status is InvitationStatus.PENDING
