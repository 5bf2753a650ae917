"""`odock-sync invitations ...`: the Enrollment tab from the command line."""

from __future__ import annotations

import uuid
from typing import Any

import click

from cli.context import CLI_ACTOR, cli_settings, database_errors, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION, ROLE
from cli.output import emit, table
from models.access import Viewer
from models.actions import invitations as invitation_actions
from models.actions import lifecycle, organisations
from models.actions import users as user_actions
from models.enums import InvitationStatus, Role, TeamRole
from models.enums import LeaverInvitationPolicy as LeaverPolicy
from models.errors import NotFound
from models.queries.invitations import (
    InvitationFilter,
    invitation_detail,
    invitation_view,
    list_invitations,
)
from models.queries.users import user_profile


@click.group()
def invitations() -> None:
    """Invite people, track, resend and revoke invitations, approve pending users."""


@invitations.command("create")
@ORG_OPTION
@click.option("--email", required=True)
@click.option("--role", type=ROLE, default="USER", show_default=True)
@click.option("--team", "teams", multiple=True, help="Team name or id; TEAM:MANAGER for a manager.")
@click.option("--expires-in-hours", type=int, default=None)
@JSON_OPTION
def create(
    org_slug: str,
    email: str,
    role: str,
    teams: tuple[str, ...],
    expires_in_hours: int | None,
    as_json: bool,
) -> None:
    """Invite an email; the invitation email is sent by the worker."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        issued = invitation_actions.invite(
            session,
            viewer=Viewer.operator(organisation.id),
            email=email,
            role=Role(role),
            teams=[_team(session, organisation.id, ref) for ref in teams],
            expires_in_hours=expires_in_hours,
            actor=CLI_ACTOR,
            secret_key=cli_settings().secret_key,
        )
        data = invitation_view(issued.invitation)
    emit(data, as_json=as_json, text=_issued_text(data))
    _say_where_the_mail_goes(data["email"])


@invitations.command("list")
@ORG_OPTION
@click.option("--status", type=click.Choice([s.value for s in InvitationStatus]), default=None)
@click.option("--search", default=None, help="Part of the email.")
@click.option("--limit", type=click.IntRange(1, 200), default=50)
@JSON_OPTION
def list_(org_slug: str, status: str | None, search: str | None, limit: int, as_json: bool) -> None:
    """Invitations, newest first, with their current status."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        page = list_invitations(
            session,
            Viewer.operator(organisation.id),
            InvitationFilter(status=InvitationStatus(status) if status else None, search=search),
            limit=limit,
        )
    text = table(
        page.items, ["email", "role", "status", "expires_at", "id"], empty="no invitations"
    )
    emit(page.items, as_json=as_json, text=text)


@invitations.command("show")
@ORG_OPTION
@click.argument("invitation_id", type=click.UUID)
@JSON_OPTION
def show(org_slug: str, invitation_id: uuid.UUID, as_json: bool) -> None:
    """One invitation with its delivery history."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        data = invitation_detail(session, Viewer.operator(organisation.id), invitation_id)
    emit(data, as_json=as_json)


@invitations.command("resend")
@ORG_OPTION
@click.argument("invitation_id", type=click.UUID)
@JSON_OPTION
def resend(org_slug: str, invitation_id: uuid.UUID, as_json: bool) -> None:
    """A fresh link and expiry; the old link stops working."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        issued = invitation_actions.resend(
            session,
            viewer=Viewer.operator(organisation.id),
            invitation_id=invitation_id,
            actor=CLI_ACTOR,
            secret_key=cli_settings().secret_key,
        )
        data = invitation_view(issued.invitation)
    emit(data, as_json=as_json, text=_issued_text(data))
    _say_where_the_mail_goes(data["email"])


@invitations.command("revoke")
@ORG_OPTION
@click.argument("invitation_id", type=click.UUID)
@JSON_OPTION
def revoke(org_slug: str, invitation_id: uuid.UUID, as_json: bool) -> None:
    """Withdraw an invitation; its link stops working."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        invitation = invitation_actions.revoke(
            session,
            viewer=Viewer.operator(organisation.id),
            invitation_id=invitation_id,
            actor=CLI_ACTOR,
        )
        data = invitation_view(invitation)
    emit(data, as_json=as_json)


@invitations.command("leaver-policy")
@ORG_OPTION
@click.argument("policy", required=False, type=click.Choice([p.value for p in LeaverPolicy]))
@JSON_OPTION
def leaver_policy(org_slug: str, policy: str | None, as_json: bool) -> None:
    """Show, or set, what revoking a person does to the invitations they sent: revoke
    (the default) or keep."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        if policy is not None:
            invitation_actions.set_leaver_policy(
                session, organisation=organisation, policy=LeaverPolicy(policy), actor=CLI_ACTOR
            )
        data = {"policy": organisation.settings.leaver_invitation_policy.value}
    emit(data, as_json=as_json, text=f"leaver invitation policy: {data['policy']}")


@invitations.command("refresh")
@ORG_OPTION
@click.argument("invitation_ids", type=click.UUID, nargs=-1, required=True)
@JSON_OPTION
def refresh(org_slug: str, invitation_ids: tuple[uuid.UUID, ...], as_json: bool) -> None:
    """The current status of each invitation (overdue ones become expired)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = invitation_actions.refresh(
            session,
            viewer=Viewer.operator(organisation.id),
            invitation_ids=list(invitation_ids),
            actor=CLI_ACTOR,
        )
        data = [invitation_view(invitation) for invitation in found]
    emit(data, as_json=as_json, text="\n".join(f"{i['id']}  {i['status']}" for i in data))


@invitations.command("expire")
@JSON_OPTION
def expire(as_json: bool) -> None:
    """Run the expiry sweep now (the beat schedule runs it periodically)."""
    from worker.runtime import init_runtime
    from worker.tasks.invitations import expire_overdue

    runtime = init_runtime(cli_settings())  # logs go to stderr: --json output stays clean
    try:
        with database_errors():
            count = expire_overdue.run()
    finally:
        runtime.engine.dispose()
    emit({"expired": count}, as_json=as_json, text=f"{count} invitations expired")


@invitations.command("approve-user")
@ORG_OPTION
@click.argument("email")
@JSON_OPTION
def approve_user(org_slug: str, email: str, as_json: bool) -> None:
    """Approve a PENDING user (for example one who accepted an invitation)."""
    with unit_of_work() as session:
        user = _pending_user(session, org_slug, email)
        lifecycle.approve(session, user=user, actor=CLI_ACTOR)
        data = user_profile(user)
    emit(data, as_json=as_json)


@invitations.command("decline-user")
@ORG_OPTION
@click.argument("email")
@click.option("--reason", default="")
@JSON_OPTION
def decline_user(org_slug: str, email: str, reason: str, as_json: bool) -> None:
    """Decline a PENDING user; they become REVOKED."""
    with unit_of_work() as session:
        user = _pending_user(session, org_slug, email)
        lifecycle.decline(session, user=user, actor=CLI_ACTOR, reason=reason)
        data = user_profile(user)
    emit(data, as_json=as_json)


def _issued_text(data: dict[str, Any]) -> str:
    return (
        f"Invitation {data['id']} for {data['email']} ({data['role']}), "
        f"{data['status']} until {data['expires_at']}."
    )


def _say_where_the_mail_goes(email: str) -> None:
    """On stderr, so that --json output stays one document."""
    settings = cli_settings()
    if settings.smtp_host:
        where = f"through SMTP at {settings.smtp_host}:{settings.smtp_port}"
    else:
        where = (
            "to the local outbox, as SMTP_HOST is unset; read it with "
            "`odock-sync mail show` (or `mail list`)"
        )
    click.echo(f"The worker sends the email to {email} {where}.", err=True)


def _pending_user(session, org_slug: str, email: str):  # type: ignore[no-untyped-def]
    organisation = organisations.get_organisation_by_slug(session, org_slug)
    found = user_actions.find_user_by_email(session, organisation.id, email)
    if found is None:
        raise NotFound(f"no user {email} in {org_slug}")
    return found


def _team(session, organisation_id: uuid.UUID, ref: str) -> invitation_actions.TeamInvite:  # type: ignore[no-untyped-def]
    from models.actions.teams import find_team_by_name, get_team

    name, _, role = (
        ref.rpartition(":")
        if ref.upper().endswith((":MANAGER", ":MEMBER"))
        else (
            ref,
            "",
            "MEMBER",
        )
    )
    try:
        team = get_team(session, organisation_id, uuid.UUID(name))
    except ValueError:
        found = find_team_by_name(session, organisation_id, name)
        if found is None:
            raise NotFound(f"no team {name!r}") from None
        team = found
    return invitation_actions.TeamInvite(team.id, TeamRole(role.upper()))
