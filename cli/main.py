"""The `odock-sync` command line."""

from __future__ import annotations

import uuid
from typing import Any

import click

from cli.context import CLI_ACTOR, cli_settings, unit_of_work, upgrade_database
from cli.options import ANY_ROLE, JSON_OPTION, ROLE, UpperChoice
from cli.output import emit, table
from models.actions import organisations
from models.actions import users as user_actions
from models.enums import Role, UserStatus
from models.errors import NotFound
from models.queries.users import user_profile


@click.group()
@click.version_option(package_name="odock-sync", prog_name="odock-sync")
def main() -> None:
    """odock-sync: identity-provider sync and webhooks for Odock."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@JSON_OPTION
def db_upgrade(as_json: bool) -> None:
    """Bring the database to the newest schema."""
    revision = upgrade_database(cli_settings())
    data = {"status": "upgraded", "revision": revision}
    emit(data, as_json=as_json, text=f"database is at the newest schema ({revision})")


@main.group()
def org() -> None:
    """Organisations."""


@org.command("create")
@click.option("--name", required=True, help="Display name.")
@click.option("--slug", default=None, help="Short name used by --org (derived from the name).")
@JSON_OPTION
def org_create(name: str, slug: str | None, as_json: bool) -> None:
    """Create an organisation."""
    with unit_of_work() as session:
        organisation = organisations.create_organisation(
            session, name=name, slug=slug, actor=CLI_ACTOR
        )
        data = {"id": str(organisation.id), "name": organisation.name, "slug": organisation.slug}
    emit(data, as_json=as_json, text=f"Created organisation {data['slug']!r} ({data['id']}).")


@main.group()
def users() -> None:
    """Create, list, show and revoke users."""


@users.command("create")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=ROLE, default="USER", show_default=True)
@JSON_OPTION
def users_create(org_slug: str, email: str, name: str, role: str, as_json: bool) -> None:
    """Create a user (ACTIVE, or PENDING when the organisation requires approval)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        created = user_actions.create_user(
            session,
            organisation=organisation,
            email=email,
            name=name,
            role=Role(role),
            actor=CLI_ACTOR,
        )
        data = user_profile(created)
    emit(data, as_json=as_json, text=_user_line(data))


# The spelling of earlier versions (`odock-sync user create`), kept hidden.
user = click.Group("user", hidden=True, help="Old spelling of `users create`.")
user.add_command(users_create, "create")
main.add_command(user)


def _user_line(data: dict[str, Any]) -> str:
    return f"{data['email']} ({data['role']}, {data['status']}): {data['id']}"


@users.command("list")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--status", default=None, type=UpperChoice([s.value for s in UserStatus]))
@click.option("--role", default=None, type=ANY_ROLE)
@JSON_OPTION
def users_list(org_slug: str, status: str | None, role: str | None, as_json: bool) -> None:
    """The users of an organisation, by email."""
    from sqlalchemy import select

    from models.entities import User

    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        query = select(User).where(User.organisation_id == organisation.id).order_by(User.email_key)
        if status:
            query = query.where(User.status == UserStatus(status.upper()))
        if role:
            query = query.where(User.role == Role(role.upper()))
        rows = [user_profile(u) for u in session.scalars(query)]
    text = table(rows, ["email", "name", "role", "status", "id"], empty="no users")
    emit(rows, as_json=as_json, text=text)


@users.command("show")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.argument("user_ref")
@JSON_OPTION
def users_show(org_slug: str, user_ref: str, as_json: bool) -> None:
    """Show one user, by id or email, as the user detail page does."""
    from models.access import Viewer
    from models.queries.users import user_detail

    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = _find_user(session, organisation.id, user_ref)
        detail = user_detail(session, Viewer.operator(organisation.id), found.id)
    emit(detail, as_json=as_json)


def _find_user(session, organisation_id: uuid.UUID, ref: str):  # type: ignore[no-untyped-def]
    try:
        return user_actions.get_user(session, organisation_id, uuid.UUID(ref))
    except ValueError:
        found = user_actions.find_user_by_email(session, organisation_id, ref)
        if found is None:
            raise NotFound(f"no user {ref}") from None
        return found


# Each topic's commands live in cli/<topic>.py and register here, one line each.
from cli.access_end import org_departure_notice, users_end_access  # noqa: E402
from cli.audit import audit  # noqa: E402
from cli.demo import demo  # noqa: E402
from cli.events import events  # noqa: E402
from cli.health import health  # noqa: E402
from cli.holds import holds  # noqa: E402
from cli.invitations import invitations  # noqa: E402
from cli.keys import keys  # noqa: E402
from cli.ldap import ldap  # noqa: E402
from cli.mail import mail  # noqa: E402
from cli.notification_deliveries import hooks_delivery, hooks_resend  # noqa: E402
from cli.odock import odock  # noqa: E402
from cli.recertification import recert  # noqa: E402
from cli.reviews import hooks, reviews, users_reactivate, users_revoke  # noqa: E402
from cli.scim import scim  # noqa: E402
from cli.serve import serve  # noqa: E402
from cli.sign_in import sign_in  # noqa: E402
from cli.tokens import token  # noqa: E402

main.add_command(serve)
main.add_command(token)
main.add_command(demo)
main.add_command(invitations)
main.add_command(scim)
main.add_command(ldap)
main.add_command(reviews)
main.add_command(recert)
main.add_command(hooks)
main.add_command(events)
main.add_command(keys)
main.add_command(holds)
main.add_command(odock)
main.add_command(audit)
main.add_command(health)
main.add_command(mail)
main.add_command(sign_in)
hooks.add_command(hooks_delivery)
hooks.add_command(hooks_resend)
users.add_command(users_revoke)
users.add_command(users_reactivate)
users.add_command(users_end_access)
org.add_command(org_departure_notice)
