"""`odock-sync odock`: the bridge to Odock's management plane (docs/odock.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import Engine

from cli.context import CLI_ACTOR, cli_settings, database_errors, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import done, emit
from models.actions import odock_bridge, odock_reconcile, organisations
from models.db import make_engine
from models.entities import OdockReconcileRun


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
@JSON_OPTION
def secret_remove(org_slug: str, secret_id: str, as_json: bool) -> None:
    """Remove a signing secret: events signed with it are refused from now on."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        odock_bridge.remove_signing_secret(
            session, organisation=organisation, secret_id=secret_id, actor=CLI_ACTOR
        )
    done(f"removed {secret_id}", {"id": secret_id, "removed": True}, as_json=as_json)


@odock.command("import")
@ORG_OPTION
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@JSON_OPTION
def import_file(org_slug: str, path: Path, as_json: bool) -> None:
    """Load keys, budgets, quotas and usage from a JSONL file (one object a line, each with a
    `kind`); a first load, which never deletes. Unusable lines are reported, not loaded."""
    with unit_of_work() as session:
        organisation_id = organisations.get_organisation_by_slug(session, org_slug).id
    with _engine() as engine, path.open("rb") as lines:
        run = odock_reconcile.import_lines(engine, organisation_id=organisation_id, lines=lines)
    with unit_of_work() as session:
        odock_reconcile.review_loaded_keys(session, run)
    _report(run, as_json)


@odock.command("reconcile")
@ORG_OPTION
@JSON_OPTION
def reconcile(org_slug: str, as_json: bool) -> None:
    """Read the management plane's listings now and repair drift (ODOCK_MANAGEMENT_URL)."""
    settings = cli_settings()
    if not settings.odock_management_url:
        raise click.ClickException("set ODOCK_MANAGEMENT_URL to the management plane's address")
    with unit_of_work() as session:
        organisation_id = organisations.get_organisation_by_slug(session, org_slug).id
    with _engine() as engine:
        run = odock_reconcile.reconcile_from_management_plane(engine, settings, organisation_id)
    with unit_of_work() as session:
        odock_reconcile.review_loaded_keys(session, run)
    _report(run, as_json)
    if run.status != "succeeded":
        raise SystemExit(1)


@contextmanager
def _engine() -> Iterator[Engine]:
    engine = make_engine(cli_settings())
    try:
        with database_errors():
            yield engine
    finally:
        engine.dispose()


def _report(run: OdockReconcileRun, as_json: bool) -> None:
    data = {"run_id": str(run.id), "status": run.status, **run.summary}
    lines = [f"{run.kind} {run.status} ({run.id})"]
    for kind in ("key", "budget", "quota"):
        counts = run.summary[kind]
        lines.append(
            f"{kind}s: {counts['seen']} seen, {counts['created']} created, "
            f"{counts['updated']} updated, {counts['unchanged']} unchanged, "
            f"{counts['deleted']} deleted, {counts['rejected']} rejected"
            + (f", {counts['unseen']} unseen (kept)" if counts.get("unseen") else "")
            + (f" -- incomplete: {counts['failure']}" if counts.get("failure") else "")
        )
    if "usage" in run.summary:
        usage = run.summary["usage"]
        lines.append(f"usage: {usage['accepted']} accepted, {usage['duplicates']} duplicates")
    problems = run.summary.get("problems", {"count": 0, "first": []})
    lines += (
        [f"{problems['count']} unusable lines", *problems["first"]] if problems["count"] else []
    )
    emit(data, as_json=as_json, text="\n".join(lines))
