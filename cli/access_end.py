"""`odock-sync users end-access` (when a person's access ends on its own) and
`odock-sync org departure-notice` (how many days ahead their managers are told)."""

from __future__ import annotations

from datetime import datetime

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.output import emit
from cli.reviews import JSON_OPTION, ORG_OPTION, _viewer, find_user
from models.actions import access_end, departure_notices, organisations
from models.queries.users import user_profile


@click.command("end-access")
@ORG_OPTION
@click.argument("user_ref")
@click.option(
    "--at", "at", default=None, help="ISO 8601 moment with its zone, e.g. 2027-01-31T17:00:00Z."
)
@click.option("--clear", is_flag=True, help="Remove the date (cancels the revocation it promised).")
@JSON_OPTION
def users_end_access(
    org_slug: str, user_ref: str, at: str | None, clear: bool, as_json: bool
) -> None:
    """Set, move or clear when a user's access ends (the schedule revokes them then)."""
    if clear == (at is not None):
        raise click.UsageError("give exactly one of --at or --clear")
    ends_at = None if clear else _moment(at or "")
    with unit_of_work() as session:
        person = find_user(session, _viewer(session, org_slug).organisation_id, user_ref)
        changed = access_end.set_access_end(session, user=person, ends_at=ends_at, actor=CLI_ACTOR)
        data = {**user_profile(person), "changed": changed}
    emit(data, as_json=as_json)


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 moment", param_hint="--at") from None


@click.command("departure-notice")
@ORG_OPTION
@click.option("--days", type=int, required=True, help="Days before an end date (0 to 90).")
@JSON_OPTION
def org_departure_notice(org_slug: str, days: int, as_json: bool) -> None:
    """Set how many days before an end date the departure notice goes out."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        departure_notices.set_notice_days(
            session, settings=organisation.settings, days=days, actor=CLI_ACTOR
        )
        data = {"organisation": organisation.slug, "departure_notice_days": days}
    emit(data, as_json=as_json, text=f"Departure notices go out {days} days ahead.")
