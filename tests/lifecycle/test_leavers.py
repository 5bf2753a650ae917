"""Leavers cannot act: no acknowledgement links, their invitations die, and only admins change
who manages a team."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import outbox
from models.access import Viewer
from models.actions import invitations, lifecycle
from models.actor import Actor
from models.entities import AuditEvent, ReviewFinding, Team, TeamMembership
from models.enums import InvitationStatus, LeaverInvitationPolicy, Role, Source, TeamRole
from tests.reviews.conftest import build_leaver, revoke_and_review
from tests.support import factories as f
from tests.support.relay import wait_relaying


def quiet_commit(session):
    """Commit the arrangement without handing its side effects to the broker."""
    outbox.take_new_messages(session)
    session.commit()


# --- acknowledgement links ----------------------------------------------------------------


def test_a_link_sent_before_revocation_stops_working_for_the_leaver(session, client, settings):
    world = build_leaver(session)
    review = revoke_and_review(session, world.person)
    token = f.review_ack_token(settings.secret_key, review, world.manager_a.email)
    lifecycle.revoke(session, user=world.manager_a, actor=f.SETUP, reason="left too")
    own = f.review_ack_token(settings.secret_key, review, world.person.email)
    quiet_commit(session)

    for link in (token, own):
        page = client.get(f"/reviews/acknowledge/{link}")
        assert page.status_code == 403 and page.mimetype == "text/html"
        assert "revoked" in page.text and "<form" not in page.text
        refused = client.post(f"/reviews/acknowledge/{link}")
        assert refused.status_code == 403 and "nothing was changed" in refused.text
    session.expire_all()
    assert all(fi.acknowledged_at is None for fi in session.scalars(select(ReviewFinding)))


def test_a_leaver_is_mailed_about_their_review_without_an_acknowledgement_link(
    session, sessions, client, worker, mailbox
):
    world = build_leaver(session)
    token = f.admin_token(session, world.org, world.admin)
    session.commit()

    revoked = client.post(
        f"/api/v1/users/{world.person.id}/revoke",
        json={"reason": "left"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert revoked.status_code == 200, revoked.json

    def opened(address):
        return [m for m in mailbox.to(address) if "opened" in str(m["Subject"])]

    (admin_mail,) = wait_relaying(lambda: opened(world.admin.email), what="the admin's mail")
    (leaver_mail,) = wait_relaying(lambda: opened(world.person.email), what="the leaver's mail")
    assert "/reviews/acknowledge/" in admin_mail.get_content()
    assert "/reviews/acknowledge/" not in leaver_mail.get_content()


# --- invitations a leaver sent ------------------------------------------------------------


def manager_invites(session, settings, org, manager, email):
    viewer = Viewer.for_user(manager)
    team = session.scalar(select(Team).where(Team.organisation_id == org.id))
    return invitations.invite(
        session,
        viewer=viewer,
        email=email,
        role=Role.USER,
        teams=[invitations.TeamInvite(team.id, TeamRole.MEMBER)],
        actor=Actor(Source.ADMIN, viewer.name, manager.id),
        secret_key=settings.secret_key,
    )


def inviting_manager(session):
    org = f.make_org(session)
    manager = f.make_user(session, org, role=Role.MANAGER)
    f.add_member(session, f.make_team(session, org), manager, TeamRole.MANAGER)
    return org, manager


def test_revoking_a_person_revokes_their_pending_invitations_and_the_links_die(session, settings):
    org, manager = inviting_manager(session)
    first = manager_invites(session, settings, org, manager, "a@example.com")
    second = manager_invites(session, settings, org, manager, "b@example.com")
    admins = f.make_user(session, org, role=Role.ORG_ADMIN)
    by_admin = manager_invites(session, settings, org, admins, "c@example.com")

    lifecycle.revoke(session, user=manager, actor=f.SETUP, reason="left")
    session.flush()

    assert first.invitation.status is InvitationStatus.REVOKED
    assert second.invitation.status is InvitationStatus.REVOKED
    assert by_admin.invitation.status is InvitationStatus.PENDING
    audited = session.scalars(
        select(AuditEvent.target_id).where(AuditEvent.action == "invitation.revoked")
    ).all()
    assert sorted(audited) == sorted([str(first.invitation.id), str(second.invitation.id)])
    with pytest.raises(invitations.InvitationRevoked):
        invitations.accept_invitation(
            session, token=first.token, email="a@example.com", name="A Person"
        )


def test_the_organisation_can_keep_a_leavers_invitations(session, settings):
    org, manager = inviting_manager(session)
    issued = manager_invites(session, settings, org, manager, "a@example.com")
    invitations.set_leaver_policy(
        session, organisation=org, policy=LeaverInvitationPolicy.KEEP, actor=f.SETUP
    )
    lifecycle.revoke(session, user=manager, actor=f.SETUP)
    session.flush()
    assert issued.invitation.status is InvitationStatus.PENDING
    accepted = invitations.accept_invitation(
        session, token=issued.token, email="a@example.com", name="A Person"
    )
    assert accepted.user.email == "a@example.com"


def test_the_leaver_policy_is_set_by_admins_through_the_api(session, client):
    org, manager = inviting_manager(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    as_admin = {"Authorization": f"Bearer {f.admin_token(session, org, admin)}"}
    as_manager = {"Authorization": f"Bearer {f.admin_token(session, org, manager)}"}
    session.commit()
    url = "/api/v1/invitations/leaver-policy"

    assert client.get(url, headers=as_admin).json == {"policy": "revoke"}
    assert client.put(url, json={"policy": "keep"}, headers=as_manager).status_code == 403
    bad = client.put(url, json={"policy": "sometimes"}, headers=as_admin)
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"
    assert client.get(url, headers=as_admin).json == {"policy": "revoke"}
    kept = client.put(url, json={"policy": "keep"}, headers=as_admin)
    assert kept.status_code == 200 and kept.json == {"policy": "keep"}
    session.expire_all()
    change = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "organisation.settings_changed")
    ).one()
    assert change.after == {"leaver_invitation_policy": "keep"}


def test_the_leaver_policy_is_set_from_the_cli(session, run):
    org = f.make_org(session)
    session.commit()
    assert "revoke" in run("invitations", "leaver-policy", "--org", org.slug).output
    run("invitations", "leaver-policy", "--org", org.slug, "keep")
    assert "keep" in run("invitations", "leaver-policy", "--org", org.slug).output
    failed = run("invitations", "leaver-policy", "--org", org.slug, "never", ok=False)
    assert "never" in failed.output


# --- who manages a team -------------------------------------------------------------------


def co_managers(session):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    one = f.make_user(session, org, role=Role.MANAGER)
    other = f.make_user(session, org, role=Role.MANAGER)
    member = f.make_user(session, org)
    team = f.make_team(session, org)
    f.add_member(session, team, one, TeamRole.MANAGER)
    f.add_member(session, team, other, TeamRole.MANAGER)
    f.add_member(session, team, member)
    headers = {
        name: {"Authorization": f"Bearer {f.admin_token(session, org, user)}"}
        for name, user in (("admin", admin), ("manager", one))
    }
    session.commit()
    return team, other, member, headers


def role_of(session, team, user):
    key = (team.id, user.id)
    session.expire_all()
    membership = session.get(TeamMembership, key)
    role = membership.role if membership else None
    session.commit()  # end the read (SQLite: a transaction holds the write lock)
    return role


def test_a_manager_cannot_demote_or_remove_a_co_manager(session, client):
    team, other, _member, headers = co_managers(session)
    url = f"/api/v1/teams/{team.id}/members/{other.id}"

    demoted = client.put(url, json={"role": "MEMBER"}, headers=headers["manager"])
    removed = client.delete(url, headers=headers["manager"])

    assert demoted.status_code == 403 and removed.status_code == 403
    assert "Organisation Admin" in demoted.json["detail"]
    assert role_of(session, team, other) is TeamRole.MANAGER


def test_a_manager_still_manages_plain_members_and_an_admin_manages_managers(session, client):
    team, other, member, headers = co_managers(session)
    member_url = f"/api/v1/teams/{team.id}/members/{member.id}"
    url = f"/api/v1/teams/{team.id}/members/{other.id}"
    promoted = client.put(member_url, json={"role": "MANAGER"}, headers=headers["manager"])
    assert promoted.status_code == 403
    assert client.delete(member_url, headers=headers["manager"]).status_code == 204
    assert role_of(session, team, member) is None

    assert client.put(url, json={"role": "MEMBER"}, headers=headers["admin"]).status_code == 200
    assert role_of(session, team, other) is TeamRole.MEMBER
    assert client.delete(url, headers=headers["admin"]).status_code == 204
    assert role_of(session, team, other) is None
