"""`odock-sync events`: IdP event hook secrets and the deliveries received."""

from __future__ import annotations

import uuid

import click

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import done, emit
from models.actions import event_hooks, idp_events, organisations
from models.entities import EventHookConfig
from models.errors import InvalidInput
from models.queries.deliveries import (
    delivery_detail,
    delivery_summary,
    get_delivery,
    list_deliveries,
)


@click.group()
def events() -> None:
    """IdP push events: Okta Event Hooks and signed generic events."""


@events.command("show")
@ORG_OPTION
@JSON_OPTION
def show(org_slug: str, as_json: bool) -> None:
    """The hook URLs and which secrets exist (never their values)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        config = session.get(EventHookConfig, organisation.id)
        data = event_hooks.describe(
            config, base_url=cli_settings().public_base_url, slug=organisation.slug
        )
    emit(data, as_json=as_json)


@events.command("okta-secret")
@ORG_OPTION
@click.option("--secret", default=None, help="The value Okta sends; generated if omitted.")
@click.option("--header-name", default="Authorization", show_default=True)
@click.option("--custom-header", default=None, metavar="NAME=VALUE")
@JSON_OPTION
def okta_secret(
    org_slug: str, secret: str | None, header_name: str, custom_header: str | None, as_json: bool
) -> None:
    """Set the Okta hook's authorization header; prints the value once."""
    custom = None
    if custom_header:
        name, sep, value = custom_header.partition("=")
        if not sep:
            raise click.BadParameter("use NAME=VALUE", param_hint="--custom-header")
        custom = (name.strip(), value.strip())
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        value = event_hooks.set_okta_secret(
            session,
            organisation=organisation,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
            secret=secret,
            header_name=header_name,
            custom_header=custom,
        )
    emit({"header_name": header_name, "secret": value}, as_json=as_json, text=value)


@events.command("okta-clear")
@ORG_OPTION
@JSON_OPTION
def okta_clear(org_slug: str, as_json: bool) -> None:
    """Remove the Okta hook's secret: every Okta delivery is refused until a new one is set."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        event_hooks.clear_okta_secret(session, organisation=organisation, actor=CLI_ACTOR)
    done("Okta event hook disabled", {"okta_hook": "disabled"}, as_json=as_json)


@events.command("secret-add")
@ORG_OPTION
@click.option("--secret", default=None, help="A whsec_ secret; generated if omitted.")
@JSON_OPTION
def secret_add(org_slug: str, secret: str | None, as_json: bool) -> None:
    """Add a signing secret for generic events (rotation: add the new, then remove the old)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        added = event_hooks.add_signing_secret(
            session,
            organisation=organisation,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
            secret=secret,
        )
    emit({"id": added.id, "secret": added.secret}, as_json=as_json, text=added.secret)


@events.command("secret-remove")
@ORG_OPTION
@click.argument("secret_id")
@JSON_OPTION
def secret_remove(org_slug: str, secret_id: str, as_json: bool) -> None:
    """Remove a signing secret of generic events: events signed with it are refused."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        event_hooks.remove_signing_secret(
            session, organisation=organisation, secret_id=secret_id, actor=CLI_ACTOR
        )
    done(f"signing secret {secret_id} removed", {"id": secret_id, "removed": True}, as_json=as_json)


@events.command("deliveries")
@ORG_OPTION
@click.option("--channel", type=click.Choice(sorted(idp_events.SOURCES)), default=None)
@click.option(
    "--status",
    type=click.Choice(list(idp_events.STATUSES)),
    default=None,
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@JSON_OPTION
def deliveries(
    org_slug: str, channel: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The deliveries received, newest first, with their outcome."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        page = list_deliveries(
            session, organisation.id, channel=channel, status=status, limit=limit
        )
    text = "\n".join(
        f"{d['id']}  {d['channel']:6} {d['status']:9} {d['received_at'][:19]}  {d['outcome'] or ''}"
        for d in page.items
    )
    emit(page.items, as_json=as_json, text=text or "no deliveries")


@events.command("delivery")
@ORG_OPTION
@click.argument("delivery_id")
@JSON_OPTION
def delivery(org_slug: str, delivery_id: str, as_json: bool) -> None:
    """One delivery: its per-event results and payload."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        data = delivery_detail(get_delivery(session, organisation.id, _uuid(delivery_id)))
    emit(data, as_json=as_json)


@events.command("reprocess")
@ORG_OPTION
@click.argument("delivery_id")
@JSON_OPTION
def reprocess(org_slug: str, delivery_id: str, as_json: bool) -> None:
    """Run a delivery's events again (e.g. after creating a user it named)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = get_delivery(session, organisation.id, _uuid(delivery_id))
        idp_events.reprocess_delivery(session, delivery=found, actor=CLI_ACTOR)
        data = delivery_summary(found)
    emit(data, as_json=as_json, text=f"delivery {data['id']} queued for processing")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a delivery id") from None
