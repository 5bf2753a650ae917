"""`odock-sync odock`: the bridge to Odock's management plane (docs/odock.md)."""

from __future__ import annotations

import click

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.output import emit
from models.actions import odock_bridge, organisations

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
ORG_OPTION = click.option("--org", "org_slug", required=True, help="Organisation slug.")


@click.group()
def odock() -> None:
    """The Odock bridge: change-event secrets, the first load and the reconcile."""


@odock.group()
def secret() -> None:
    """Secrets Odock signs its change events with (POST /odock/v1/events)."""


@secret.command("add")
@ORG_OPTION
@click.option("--secret", "value", default=None, help="whsec_...; generated if omitted.")
@JSON_OPTION
def secret_add(org_slug: str, value: str | None, as_json: bool) -> None:
    """Add a signing secret; prints it once. Older ones stay valid until removed."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        added = odock_bridge.add_signing_secret(
            session,
            organisation=organisation,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
            secret=value,
        )
    emit({"id": added.id, "secret": added.secret}, as_json=as_json, text=added.secret)


@secret.command("list")
@ORG_OPTION
@JSON_OPTION
def secret_list(org_slug: str, as_json: bool) -> None:
    """Which secrets exist (never their values)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        secrets = odock_bridge.describe_secrets(session, organisation.id)
    text = "\n".join(f"{s['id']}  {s['created_at']}  ...{s['ends_with']}" for s in secrets)
    emit(secrets, as_json=as_json, text=text or "no signing secrets")


@secret.command("remove")
@ORG_OPTION
@click.argument("secret_id")
def secret_remove(org_slug: str, secret_id: str) -> None:
    """Remove a signing secret: events signed with it are refused from now on."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        odock_bridge.remove_signing_secret(
            session, organisation=organisation, secret_id=secret_id, actor=CLI_ACTOR
        )
    click.echo(f"removed {secret_id}")
