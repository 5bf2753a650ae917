"""`odock-sync audit`: export the audit trail as JSON lines or CSV, in constant memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import IO

import click
from sqlalchemy.orm import Session

from cli.context import cli_settings, database_errors
from models.actions import organisations
from models.base import utcnow
from models.enums import Source
from models.errors import DomainError
from models.queries.audit_events import (
    AuditFilter,
    csv_header,
    csv_line,
    iter_events,
    jsonl_line,
    parse_moment,
)
from worker.runtime import init_runtime

RELATIVE = re.compile(r"^(\d{1,6})([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@click.group()
def audit() -> None:
    """The audit trail: every change, who or what made it, before and after."""


@audit.command("export")
@click.option("--since", required=True, help="ISO 8601 time, or 30m / 12h / 7d ago.")
@click.option("--until", default=None, help="ISO 8601 time, or 30m / 12h / 7d ago.")
@click.option("--org", "org_slug", default=None, help="One organisation (default: all).")
@click.option("--source", type=click.Choice([s.value for s in Source]), default=None)
@click.option("--action", default=None, help="An action, or a prefix such as user.*")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", "-o", type=click.File("w", lazy=True), default="-")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(100, 50_000))
def export(
    since: str,
    until: str | None,
    org_slug: str | None,
    source: str | None,
    action: str | None,
    fmt: str,
    output: IO[str],
    batch_size: int,
) -> None:
    """Write matching events oldest first; memory stays flat however many there are."""
    now = utcnow()
    with _reading() as session:
        organisation_id = (
            organisations.get_organisation_by_slug(session, org_slug).id if org_slug else None
        )
        filters = AuditFilter(
            organisation_id=organisation_id,
            since=_when(since, "since", now),
            until=_when(until, "until", now) if until else None,
            source=Source(source) if source else None,
            action=action,
        )
        if fmt == "csv":
            output.write(csv_header())
        line = csv_line if fmt == "csv" else jsonl_line
        for view in iter_events(session, filters, batch_size=batch_size):
            output.write(line(view))
    output.flush()


def _when(value: str, name: str, now: datetime) -> datetime:
    relative = RELATIVE.match(value.strip())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{UNITS[unit]: int(amount)})
    try:
        return parse_moment(value, name)
    except DomainError as exc:
        raise click.BadParameter(exc.message + " or 30m, 12h, 7d", param_hint=f"--{name}") from None


@contextmanager
def _reading() -> Iterator[Session]:
    runtime = init_runtime(cli_settings())
    try:
        with database_errors(), runtime.sessions() as session:
            yield session
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        runtime.engine.dispose()


from cli.audit_streams import streams  # noqa: E402

audit.add_command(streams)
