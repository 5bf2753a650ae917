"""`odock-sync health`: each source's last sign of life, open incidents, quiet allowances."""

from __future__ import annotations

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from models.actions import organisations
from models.base import utcnow
from models.source_health import failing_hooks, open_incidents, source_statuses

SECONDS = click.IntRange(60, 90 * 86400)


@click.group()
def health() -> None:
    """Source health: silent or failing sources alert the admins once, and clear."""


@health.command("show")
@ORG_OPTION
@JSON_OPTION
def show(org_slug: str, as_json: bool) -> None:
    """Each source's last sign of life, open incidents and failing hooks."""
    now = utcnow()
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        data = {
            "sources": [
                s.view(now)
                for s in source_statuses(session, organisation_id=organisation.id, now=now)
            ],
            "incidents": [
                {"source": i.source, "opened_at": i.opened_at.isoformat(), "reason": i.reason}
                for i in open_incidents(session, organisation_id=organisation.id)
            ],
            "failing_hooks": failing_hooks(session, organisation_id=organisation.id),
        }
    lines = [
        f"{'ok     ' if s['healthy'] else 'SILENT '} {s['name']}: quiet {s['quiet_seconds']:.0f} s"
        f" of {s['allowance_seconds']} s allowed"
        for s in data["sources"]
    ] or ["no sources configured"]
    emit(data, as_json=as_json, text="\n".join(lines))


@health.command("settings")
@ORG_OPTION
@click.option("--scim-silence-seconds", type=SECONDS, default=None)
@click.option("--ldap-silence-seconds", type=SECONDS, default=None)
@click.option("--idp-events-silence-seconds", type=SECONDS, default=None)
@click.option("--stream-failure-seconds", type=SECONDS, default=None)
@JSON_OPTION
def settings(org_slug: str, as_json: bool, **values: int | None) -> None:
    """How long each kind of source may stay quiet before the admins are alerted."""
    changes = {name: value for name, value in values.items() if value is not None}
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        if changes:
            organisations.update_settings(
                session, organisation=organisation, changes=changes, actor=CLI_ACTOR
            )
        current = organisation.settings
        data = {
            name: getattr(current, name)
            for name in (
                "scim_silence_seconds",
                "ldap_silence_seconds",
                "idp_events_silence_seconds",
                "stream_failure_seconds",
            )
        }
    emit(data, as_json=as_json)
