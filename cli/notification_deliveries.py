"""`odock-sync hooks delivery` and `hooks resend`: one notification delivery, and sending it
again (the same payload and webhook id, signed afresh)."""

from __future__ import annotations

import uuid

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from models.actions import notification_deliveries as deliveries
from models.actions import organisations
from models.errors import InvalidInput


@click.command("delivery")
@ORG_OPTION
@click.argument("delivery_id")
@JSON_OPTION
def hooks_delivery(org_slug: str, delivery_id: str, as_json: bool) -> None:
    """One notification delivery with every attempt."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = deliveries.get_notification_delivery(session, organisation.id, _uuid(delivery_id))
        data = deliveries.delivery_view(session, found)
    emit(data, as_json=as_json)


@click.command("resend")
@ORG_OPTION
@click.argument("delivery_id")
@JSON_OPTION
def hooks_resend(org_slug: str, delivery_id: str, as_json: bool) -> None:
    """Send a notification delivery again (a receiver that got it before can tell)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = deliveries.get_notification_delivery(session, organisation.id, _uuid(delivery_id))
        deliveries.resend_delivery(session, delivery=found, actor=CLI_ACTOR)
        data = deliveries.delivery_view(session, found)
    emit(data, as_json=as_json, text=f"delivery {data['id']} queued to be sent again")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a delivery id") from None
