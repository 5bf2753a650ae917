"""`odock-sync recert`: the key recertification policy, campaigns and decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import done, emit, table
from cli.reviews import _uuid, _viewer
from models.actions import recertification
from models.enums import FindingState, RecertDeadlinePolicy, RecertDecision
from models.queries import recertification as queries
from models.text import visible_strings


@click.group("recert")
def recert() -> None:
    """Key recertification: schedule, campaigns, owners' decisions."""


def _days(value: str | None, name: str) -> int | str | None:
    """A number of days, or `off` (left out of the scope); the domain checks the range."""
    if value is None:
        return "unset"
    if value == "off":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a whole number or 'off'", param_hint=name
        ) from None


@recert.command("configure")
@ORG_OPTION
@click.option("--enabled/--disabled", default=None, help="Open campaigns on the schedule.")
@click.option("--every-days", type=int, help="Days between campaigns (e.g. 90).")
@click.option("--anchor", type=click.DateTime(), help="When the schedule's first slot opens (UTC).")
@click.option("--deadline-days", type=int, help="Days an owner has to answer.")
@click.option("--spend-days", help="Keys with spend in the last N days (or 'off').")
@click.option("--unused-days", help="Keys unused for N days (or 'off').")
@click.option("--moved-people/--no-moved-people", default=None, help="Keys of people who moved.")
@click.option("--inactive-days", type=int, help="Report people with no usage for N days.")
@click.option(
    "--on-deadline",
    type=click.Choice([p.value for p in RecertDeadlinePolicy]),
    help="What happens to keys nobody confirmed.",
)
@JSON_OPTION
def recert_configure(org_slug: str, as_json: bool, anchor: datetime | None, **given: Any) -> None:
    """Change the organisation's recertification policy."""
    changes = {name: value for name, value in given.items() if value is not None}
    for name in ("spend_days", "unused_days"):
        days = _days(changes.pop(name, None), f"--{name.replace('_', '-')}")
        if days != "unset":
            changes[name] = days
    if anchor is not None:
        changes["anchor_at"] = anchor.replace(tzinfo=UTC)
    with unit_of_work() as session:
        organisation_id = _viewer(session, org_slug).organisation_id
        policy = recertification.configure(
            session, organisation_id=organisation_id, actor=CLI_ACTOR, changes=changes
        )
        data = recertification.policy_view(policy)
    done("recertification policy saved", data, as_json=as_json)


@recert.command("policy")
@ORG_OPTION
@JSON_OPTION
def recert_policy(org_slug: str, as_json: bool) -> None:
    """Show the organisation's recertification policy."""
    with unit_of_work() as session:
        organisation_id = _viewer(session, org_slug).organisation_id
        data = recertification.policy_view(recertification.policy_of(session, organisation_id))
    emit(data, as_json=as_json)


@recert.command("open")
@ORG_OPTION
@JSON_OPTION
def recert_open(org_slug: str, as_json: bool) -> None:
    """Open a campaign now: each key in scope becomes a finding for its owner."""
    with unit_of_work() as session:
        organisation_id = _viewer(session, org_slug).organisation_id
        opened = recertification.open_campaign(
            session, organisation_id=organisation_id, actor=CLI_ACTOR
        )
        data = queries.campaign_summary(session, opened.campaign)
    findings = sum(data["findings"].values())
    how = "opened" if opened.created else "already open (opened by hand, before its deadline)"
    done(f"campaign {data['id']} {how}: {findings} findings", data, as_json=as_json)


@recert.command("list")
@ORG_OPTION
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@JSON_OPTION
def recert_list(org_slug: str, limit: int, as_json: bool) -> None:
    """Campaigns, newest first."""
    with unit_of_work() as session:
        items, _ = queries.list_campaigns(
            session, _viewer(session, org_slug), limit=limit, after=None
        )
    columns = ["id", "slot", "status", "opened_at", "deadline_at"]
    emit(items, as_json=as_json, text=table(items, columns, empty="no campaigns"))


@recert.command("show")
@ORG_OPTION
@click.argument("campaign_id")
@click.option("--state", type=click.Choice([s.value for s in FindingState]))
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@JSON_OPTION
def recert_show(
    org_slug: str, campaign_id: str, state: str | None, limit: int, as_json: bool
) -> None:
    """A campaign: its report, counts and findings."""
    with unit_of_work() as session:
        data = queries.campaign_detail(
            session,
            _viewer(session, org_slug),
            _uuid(campaign_id, "campaign id"),
            state=FindingState(state) if state else None,
            limit=limit,
            offset=0,
        )
    report = data["report"]
    lines = [
        f"campaign {data['id']} ({data['status']}) deadline {data['deadline_at']}",
        f"  in scope: {report.get('in_scope')}",
        f"  unused keys: {report.get('unused_keys', {}).get('total', 0)}, "
        f"inactive people: {report.get('inactive_people', {}).get('total', 0)}",
    ] + [
        f"  {f['id']}  {f['state']:9} {f['subject_name']}: {f['action']}"
        for f in visible_strings(data["items"])
    ]
    emit(data, as_json=as_json, text="\n".join(lines))


@recert.command("decide")
@ORG_OPTION
@click.argument("finding_id")
@click.argument("decision", type=click.Choice([d.value for d in RecertDecision]))
@click.option("--reason", default="", help="Why (required to keep a key).")
@JSON_OPTION
def recert_decide(
    org_slug: str, finding_id: str, decision: str, reason: str, as_json: bool
) -> None:
    """Keep (with --reason), rotate or revoke a finding's key."""
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        finding = queries.finding_for_decision(session, viewer, _uuid(finding_id, "finding id"))
        recertification.decide(
            session,
            finding=finding,
            decision=RecertDecision(decision),
            reason=reason,
            actor=CLI_ACTOR,
        )
        data = queries.finding_detail(session, finding)
    done(f"finding {data['id']}: {data['action']} ({data['state']})", data, as_json=as_json)


@recert.command("restore")
@ORG_OPTION
@click.argument("finding_id")
@click.option("--reason", default="")
@JSON_OPTION
def recert_restore(org_slug: str, finding_id: str, reason: str, as_json: bool) -> None:
    """Restore a key the campaign revoked."""
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        finding = queries.require_admin_finding(session, viewer, _uuid(finding_id, "finding id"))
        recertification.restore(session, finding=finding, actor=CLI_ACTOR, reason=reason)
        data = queries.finding_detail(session, finding)
    done(f"key {data['subject_id']} restored", data, as_json=as_json)
