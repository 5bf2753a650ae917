"""`odock-sync holds ...`: the mass-change gate's thresholds and the changes it holds."""

from __future__ import annotations

import uuid
from typing import Any

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from models.actions import mass_change, mass_change_holds, organisations
from models.entities import MassChange
from models.enums import ChangeStatus
from models.errors import InvalidInput
from models.queries.mass_change import hold_views, list_holds, tripped_gates

BATCH_OPTION = click.option(
    "--batch", "batch_ref", default=None, help="Every held change of a batch."
)


@click.group()
def holds() -> None:
    """Destructive changes from SCIM and IdP events held by the mass-change gate."""


@holds.command("list")
@ORG_OPTION
@click.option(
    "--status",
    type=click.Choice([s.value for s in ChangeStatus if s is not ChangeStatus.APPLIED]),
    default=ChangeStatus.HELD.value,
    show_default=True,
)
@BATCH_OPTION
@JSON_OPTION
def list_(org_slug: str, status: str, batch_ref: str | None, as_json: bool) -> None:
    """Held changes, oldest first."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        batch_id = _uuid(batch_ref, "batch") if batch_ref else None
        rows = list_holds(session, organisation.id, status=ChangeStatus(status), batch_id=batch_id)
    text = "\n".join(
        f"{r['id']}  batch {r['batch_id']}  {r['source']:7} {r['kind']:10} {r['user_email']}"
        for r in rows
    )
    emit(rows, as_json=as_json, text=text or f"no {status} changes")


@holds.command("approve")
@ORG_OPTION
@click.argument("hold_ids", nargs=-1)
@BATCH_OPTION
@JSON_OPTION
def approve(org_slug: str, hold_ids: tuple[str, ...], batch_ref: str | None, as_json: bool) -> None:
    """Apply held changes now (by hold id, or a whole --batch)."""
    _decide(org_slug, hold_ids, batch_ref, as_json, approve=True)


@holds.command("discard")
@ORG_OPTION
@click.argument("hold_ids", nargs=-1)
@BATCH_OPTION
@JSON_OPTION
def discard(org_slug: str, hold_ids: tuple[str, ...], batch_ref: str | None, as_json: bool) -> None:
    """Drop held changes: nobody is revoked or demoted by them."""
    _decide(org_slug, hold_ids, batch_ref, as_json, approve=False)


def _decide(
    org_slug: str, hold_ids: tuple[str, ...], batch_ref: str | None, as_json: bool, *, approve: bool
) -> None:
    if bool(hold_ids) == bool(batch_ref):
        raise click.UsageError("name hold ids or one --batch, not both and not neither")
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = _holds(session, organisation.id, hold_ids, batch_ref)
        if approve:
            mass_change_holds.approve(session, holds=found, actor=CLI_ACTOR)
        else:
            mass_change_holds.discard(session, holds=found, actor=CLI_ACTOR)
        rows = hold_views(session, found)
    verb = "approved" if approve else "discarded"
    emit(rows, as_json=as_json, text=f"{len(rows)} held changes {verb}")


def _holds(
    session: Any, organisation_id: uuid.UUID, hold_ids: tuple[str, ...], batch_ref: str | None
) -> list[MassChange]:
    if batch_ref:
        return mass_change_holds.batch_holds(session, organisation_id, _uuid(batch_ref, "batch"))
    return [
        mass_change_holds.get_hold(session, organisation_id, _uuid(ref, "hold")) for ref in hold_ids
    ]


@holds.command("settings")
@ORG_OPTION
@click.option("--enable/--disable", "enabled", default=None, help="Turn the gate on or off.")
@click.option("--count", "threshold_count", type=int, default=None, help="0: no count limit.")
@click.option("--percent", "threshold_percent", type=int, default=None, help="0: no limit.")
@click.option("--window", "window_minutes", type=int, default=None, help="Minutes.")
@JSON_OPTION
def settings(org_slug: str, as_json: bool, **changes: Any) -> None:
    """Show the thresholds, or change those given."""
    wanted = {name: value for name, value in changes.items() if value is not None}
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        if wanted:
            mass_change.set_thresholds(
                session, organisation=organisation, actor=CLI_ACTOR, **wanted
            )
        data = {
            **mass_change.thresholds(session, organisation.id).view(),
            "holding": tripped_gates(session, organisation.id),
        }
    emit(data, as_json=as_json)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a {what} id") from None
