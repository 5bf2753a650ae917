"""`odock-sync ldap ...`: directory connectors, test, sync with progress, runs and approvals."""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

import click

from cli.context import CLI_ACTOR, cli_settings, database_errors, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from models.actions import directory_connectors as connectors
from models.actions import organisations
from models.directory import approvals
from models.directory import runs as sync_runs
from models.enums import SyncKind
from models.queries.directory import connector_view, list_connectors, list_runs, run_view

# How `ldap sync` and `ldap test` end, for scripts and schedulers (table in docs/ldap.md).
# 1 and 2 are click's own: an error before any run (bad input, unknown organisation) and a
# usage error.
EXIT_CODES = {"failed": 3, "quarantined": 4, "skipped": 5}
EXIT_TEST_FAILED = 6
# `ldap approve`: refused (outdated, directory unreadable), or left to the worker
APPROVE_EXIT_CODES = {"quarantined": 4, "approving": 5}

CONNECTOR_OPTION = click.option(
    "--connector", "connector_ref", default="", help="Connector name or id (if several)."
)


@click.group()
def ldap() -> None:
    """LDAP and Active Directory sync."""


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        group, sep, target = value.partition("=")
        if not sep or not group or not target:
            raise click.BadParameter(f"{value!r}: expected GROUP={what.upper()}")
        result[group] = target
    return result


@ldap.command("add")
@ORG_OPTION
@click.option("--name", required=True)
@click.option("--url", "urls", multiple=True, required=True, help="ldap:// or ldaps:// (repeat).")
@click.option("--base-dn", required=True)
@click.option("--bind-dn", default="")
@click.option("--bind-password-env", default="", help="Read the bind password from this variable.")
@click.option("--start-tls", is_flag=True)
@click.option("--ca-file", default="")
@click.option("--no-verify-tls", is_flag=True, help="Do not verify the server certificate.")
@click.option("--preset", default="openldap")
@click.option("--user-filter", default="")
@click.option("--group-base-dn", default="")
@click.option("--group-filter", default="")
@click.option("--page-size", default=500, type=int)
@click.option("--full-every", "full_sync_minutes", default=60, type=int, help="Minutes.")
@click.option("--incremental-every", "incremental_minutes", default=5, type=int, help="Minutes.")
@click.option("--group-team", multiple=True, help="GROUP=TEAM (repeat).")
@click.option("--group-role", multiple=True, help="GROUP=ROLE (repeat).")
@JSON_OPTION
def add(
    org_slug: str,
    urls: tuple[str, ...],
    bind_password_env: str,
    no_verify_tls: bool,
    group_team: tuple[str, ...],
    group_role: tuple[str, ...],
    as_json: bool,
    **fields: Any,
) -> None:
    """Configure a directory connector for an organisation."""
    password = os.environ.get(bind_password_env, "") if bind_password_env else None
    fields.update(
        server_urls=list(urls),
        verify_tls=not no_verify_tls,
        group_teams=_pairs(group_team, "team"),
        group_roles=_pairs(group_role, "role"),
    )
    # Before the transaction: see models.actions.directory_connectors.
    names = connectors.resolved_ahead(list(urls), cli_settings())
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        connector = connectors.create_connector(
            session,
            organisation=organisation,
            fields=fields,
            bind_password=password,
            settings=cli_settings(),
            actor=CLI_ACTOR,
            names=names,
        )
        data = connector_view(connector)
    emit(data, as_json=as_json, text=f"connector {data['name']} created ({data['id']})")


@ldap.command("list")
@ORG_OPTION
@JSON_OPTION
def list_(org_slug: str, as_json: bool) -> None:
    """The organisation's connectors."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        rows = [connector_view(c) for c in list_connectors(session, organisation.id)]
    text = "\n".join(
        f"{r['id']}  {r['name']:20} {r['server_urls'][0]}  {r['base_dn']}" for r in rows
    )
    emit(rows, as_json=as_json, text=text or "no connectors")


def _load(org_slug: str, ref: str) -> tuple[Any, int]:
    """The connector (detached, so no transaction stays open) and the expected entry count."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        connector = connectors.find_connector(session, organisation.id, ref)
        previous = list_runs(session, connector, limit=5)
        expected = max((run.read_count for run in previous), default=0)
        session.expunge(connector)
    return connector, expected


def _settings_change(thresholds: tuple[str, ...]) -> dict[str, Any]:
    """KIND.FIELD=N pairs (revoke.count=100) as a partial safety policy."""
    change: dict[str, Any] = {}
    for value in thresholds:
        key, sep, number = value.partition("=")
        kind, dot, name = key.partition(".")
        if not sep or not dot or not kind or not name:
            raise click.BadParameter(f"{value!r}: expected KIND.count=N or KIND.percent=N")
        try:
            amount = int(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: {number!r} is not a whole number") from None
        change.setdefault("thresholds", {}).setdefault(kind, {})[name] = amount
    return change


@ldap.command("safety")
@ORG_OPTION
@CONNECTOR_OPTION
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    help=(
        "KIND.count=N or KIND.percent=N; KIND is revoke, team_remove, demote, reactivate "
        "or end_date_clear (repeat)."
    ),
)
@click.option("--rehire", default=None, help="relink (default) or report.")
@JSON_OPTION
def safety(
    org_slug: str,
    connector_ref: str,
    thresholds: tuple[str, ...],
    rehire: str | None,
    as_json: bool,
) -> None:
    """Show a connector's safety thresholds and policies, or change them."""
    change = _settings_change(thresholds)
    if rehire is not None:
        change["rehire"] = rehire
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        connector = connectors.find_connector(session, organisation.id, connector_ref)
        if change:
            connectors.update_connector(
                session,
                connector=connector,
                fields={"safety": change},
                bind_password=None,
                settings=cli_settings(),
                actor=CLI_ACTOR,
            )
        data = connector_view(connector)["safety"]
    lines = [
        f"{kind:14} count {limit['count']:>8}  percent {limit['percent']:>3}"
        for kind, limit in data["thresholds"].items()
    ]
    lines += [f"{name}: {value}" for name, value in data.items() if name != "thresholds"]
    emit(data, as_json=as_json, text="\n".join(lines))


@ldap.command("test")
@ORG_OPTION
@CONNECTOR_OPTION
@click.option("--user", "username", default="", help="Map this username as the sample.")
@JSON_OPTION
def test(org_slug: str, connector_ref: str, username: str, as_json: bool) -> None:
    """Bind, count the matching entries and show one mapped person; changes nothing."""
    from models.directory.connection_check import test_connection

    connector, _ = _load(org_slug, connector_ref)
    result = test_connection(connector, cli_settings(), username=username)
    emit(result, as_json=as_json)
    if not result["ok"]:
        raise SystemExit(EXIT_TEST_FAILED)


@ldap.command("sync")
@ORG_OPTION
@CONNECTOR_OPTION
@click.option("--dry-run", is_flag=True, help="Store and show the plan; change nothing.")
@click.option("--incremental", is_flag=True, help="Only entries changed since the last sync.")
@JSON_OPTION
def sync(
    org_slug: str, connector_ref: str, dry_run: bool, incremental: bool, as_json: bool
) -> None:
    """Run a sync now, in this process, with a progress bar."""
    from worker.celery_app import configure_celery
    from worker.directory_sync import run_sync
    from worker.runtime import init_runtime

    connector, expected = _load(org_slug, connector_ref)
    settings = cli_settings()
    configure_celery(settings)
    runtime = init_runtime(settings)
    kind = SyncKind.INCREMENTAL if incremental else SyncKind.FULL
    stderr = sys.stderr
    total = expected if expected > 0 else 1
    progress_bar: Any = click.progressbar(length=total, label="reading the directory", file=stderr)
    with progress_bar as bar:
        seen = [0]

        def progress(read: int) -> None:
            bar.update(read - seen[0])
            seen[0] = read

        with database_errors():  # lost mid-run: the run is failed `database_unavailable`
            outcome = run_sync(
                runtime.sessions,
                settings,
                connector_id=connector.id,
                kind=kind,
                dry_run=dry_run,
                trigger="cli",
                progress=progress,
            )
    with unit_of_work() as session:
        view = run_view(
            sync_runs.get_run(session, connector.organisation_id, uuid.UUID(outcome.run_id))
        )
    view["plan_summary"] = outcome.summary
    emit(view, as_json=as_json, text=_run_text(view))
    if outcome.status in EXIT_CODES:
        raise SystemExit(EXIT_CODES[outcome.status])


def _run_text(view: dict[str, Any]) -> str:
    lines = [f"run {view['id']}: {view['status']}{' (dry run)' if view['dry_run'] else ''}"]
    if view.get("plan_summary"):
        lines.append("plan: " + ", ".join(f"{k} {v}" for k, v in view["plan_summary"].items()))
    lines.append("done: " + ", ".join(f"{k} {v}" for k, v in view["counts"].items()))
    if view["error"]:
        lines.append(f"note: {view['error']}")
    dropped = (view.get("plan") or {}).get("dropped_counts")
    if dropped:
        lines.append(
            "dropped (no longer true in the directory): "
            + ", ".join(f"{k} {v}" for k, v in dropped.items())
        )
    return "\n".join(lines)


@ldap.command("runs")
@ORG_OPTION
@CONNECTOR_OPTION
@click.option("--limit", default=20, type=int)
@JSON_OPTION
def runs(org_slug: str, connector_ref: str, limit: int, as_json: bool) -> None:
    """Recent runs of a connector."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        connector = connectors.find_connector(session, organisation.id, connector_ref)
        rows = [run_view(r) for r in list_runs(session, connector, limit=limit)]
    text = "\n".join(
        f"{r['id']}  {r['started_at'][:19]}  {r['kind']:11} {r['status']:11} "
        f"read {r['counts']['read']} revoked {r['counts']['revoked']} {r['error']}"
        for r in rows
    )
    emit(rows, as_json=as_json, text=text or "no runs")


@ldap.command("plan")
@ORG_OPTION
@click.argument("run_id", type=click.UUID)
@JSON_OPTION
def plan(org_slug: str, run_id: uuid.UUID, as_json: bool) -> None:
    """Show a run's stored plan (what a dry run or a quarantined run would do)."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        view = run_view(sync_runs.get_run(session, organisation.id, run_id), with_plan=True)
    emit(view, as_json=as_json, text=_plan_text(view))


def _plan_text(view: dict[str, Any]) -> str:
    stored = view.get("plan") or {}
    lines = [f"run {view['id']}: {view['status']}  {view['error']}".rstrip()]
    for key in (
        "creates",
        "links",
        "relinks",
        "updates",
        "revokes",
        "reactivates",
        "roles",
        "team_adds",
        "team_removes",
        "team_retires",
        "errors",
    ):
        for item in stored.get(key, []):
            who = item.get("email") or item.get("dn") or item.get("external_id")
            detail = item.get("reason") or item.get("team") or item.get("message") or ""
            if key == "updates":
                detail = ", ".join(item["fields"])
            lines.append(f"{key[:-1] if key.endswith('s') else key:12} {who}  {detail}".rstrip())
    return "\n".join(lines)


@ldap.command("approve")
@ORG_OPTION
@click.argument("run_id", type=click.UUID)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 86400),
    default=600,
    show_default=True,
    help="How long to wait while a sync (or a worker applying this approval) holds the lease.",
)
@JSON_OPTION
def approve(org_slug: str, run_id: uuid.UUID, wait_seconds: int, as_json: bool) -> None:
    """Approve a quarantined plan; re-check it against the directory and apply what holds.

    The approval is recorded first (as the API does); this process then applies it as a
    worker would. While another process holds the connector's lease it waits, then exits 5
    if the approval is still waiting (a worker applies it later).
    """
    from sqlalchemy.exc import DBAPIError

    from models.db import is_unavailable
    from models.directory.runs import SyncRunning
    from worker.celery_app import configure_celery
    from worker.directory_approval import apply_approval
    from worker.runtime import init_runtime

    with unit_of_work() as session:
        organisation_id = organisations.get_organisation_by_slug(session, org_slug).id
        found = sync_runs.get_run(session, organisation_id, run_id, for_update=True)
        approvals.request_approval(session, run=found, actor=CLI_ACTOR)
    settings = cli_settings()
    configure_celery(settings)
    runtime = init_runtime(settings)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                apply_approval(runtime.sessions, settings, run_id=run_id, actor=CLI_ACTOR)
                break
            except (SyncRunning, DBAPIError) as exc:  # busy, or the database dropped for now
                if isinstance(exc, DBAPIError) and not is_unavailable(exc):
                    raise
                if time.monotonic() >= deadline:
                    break
                time.sleep(1)
    finally:
        runtime.engine.dispose()
    with unit_of_work() as session:
        view = run_view(sync_runs.get_run(session, organisation_id, run_id), with_plan=True)
    emit(view, as_json=as_json, text=_run_text(view))
    if view["status"] in APPROVE_EXIT_CODES:
        raise SystemExit(APPROVE_EXIT_CODES[view["status"]])


@ldap.command("discard")
@ORG_OPTION
@click.argument("run_id", type=click.UUID)
@JSON_OPTION
def discard(org_slug: str, run_id: uuid.UUID, as_json: bool) -> None:
    """Drop a quarantined plan without applying it."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        found = sync_runs.get_run(session, organisation.id, run_id)
        approvals.discard_run(session, run=found, actor=CLI_ACTOR)
        view = run_view(found)
    emit(view, as_json=as_json, text=_run_text(view))
