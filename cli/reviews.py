"""`odock-sync reviews`, `odock-sync hooks`, `odock-sync users revoke [--dry-run]` and
`odock-sync users reactivate [--restore-used-keys]`."""

from __future__ import annotations

import uuid
from typing import Any

import click
from sqlalchemy.orm import Session

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import done, emit
from connectors.outbound import UrlPolicy
from models import audit
from models.access import Viewer
from models.actions import lifecycle, organisations
from models.actions import notification_hooks as hooks_actions
from models.actions import reviews as review_actions
from models.actions import users as user_actions
from models.actions.notification_deliveries import deliveries_of
from models.actions.review_sweep import sweep_reviews
from models.actions.teams import find_team_by_name, get_team
from models.entities import Team, User
from models.enums import DeletedTeamKeyPolicy, HookKind, KeyPolicy, ReviewCause, ReviewStatus
from models.errors import InvalidInput, NotFound
from models.outbound_targets import resolved_ahead
from models.queries.reviews import (
    MAX_PAGE,
    ReviewFilter,
    finding_view,
    list_reviews,
    review_detail,
    revocation_preview,
    visible_finding,
    visible_review,
)
from models.queries.users import user_profile
from models.text import visible_strings


def _viewer(session: Session, org_slug: str) -> Viewer:
    return Viewer.operator(organisations.get_organisation_by_slug(session, org_slug).id)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a UUID") from None


def find_user(session: Session, organisation_id: uuid.UUID, ref: str) -> User:
    """A user by id or by email."""
    try:
        return user_actions.get_user(session, organisation_id, uuid.UUID(ref))
    except ValueError:
        found = user_actions.find_user_by_email(session, organisation_id, ref)
        if found is None:
            raise NotFound(f"no user {ref}") from None
        return found


def find_team(session: Session, organisation_id: uuid.UUID, ref: str) -> Team:
    try:
        return get_team(session, organisation_id, uuid.UUID(ref))
    except ValueError:
        found = find_team_by_name(session, organisation_id, ref)
        if found is None:
            raise NotFound(f"no team {ref}") from None
        return found


# --- users revoke ---------------------------------------------------------------------------


@click.command("revoke")
@ORG_OPTION
@click.argument("user_ref")
@click.option("--reason", default="", help="Why (kept on the revocation and in the audit).")
@click.option("--dry-run", is_flag=True, help="Show the blast radius; change nothing.")
@JSON_OPTION
def users_revoke(org_slug: str, user_ref: str, reason: str, dry_run: bool, as_json: bool) -> None:
    """Revoke a user (by id or email); with --dry-run, preview what it would do."""
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        person = find_user(session, viewer.organisation_id, user_ref)
        if dry_run:
            data = revocation_preview(session, viewer, person.id)
        else:
            revocation = lifecycle.revoke(session, user=person, actor=CLI_ACTOR, reason=reason)
            data = {**user_profile(person), "revocation_id": str(revocation.id)}
    emit(data, as_json=as_json, text=_preview_text(visible_strings(data)) if dry_run else None)


@click.command("reactivate")
@ORG_OPTION
@click.argument("user_ref")
@click.option(
    "--restore-used-keys",
    is_flag=True,
    help="Re-enable even the keys used after the revocation (audited as such).",
)
@JSON_OPTION
def users_reactivate(org_slug: str, user_ref: str, restore_used_keys: bool, as_json: bool) -> None:
    """Reactivate a revoked user (by id or email): only what their revocation disabled."""
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        person = find_user(session, viewer.organisation_id, user_ref)
        outcome = lifecycle.reactivate(
            session, user=person, actor=CLI_ACTOR, restore_used_keys=restore_used_keys
        )
        data = {**user_profile(person), "outcome": outcome.value}
    if outcome is lifecycle.Outcome.REFUSED:  # committed: the refusal is audited
        raise click.ClickException(lifecycle.USED_KEYS_REFUSAL)
    emit(data, as_json=as_json)


def _preview_text(data: dict[str, Any]) -> str:
    lines = [f"Revoking {data['user']['email']} would:"]
    for key in data["keys"]:
        lines.append(f"  {key['action']:16} user key {key['name']} ({key['masked_value']})")
    for key in data["team_keys"]:
        lines.append(f"  {key['action']:16} team key {key['name']} ({key['masked_value']})")
    for key in data["org_keys"]:
        lines.append(f"  {key['action']:16} org key {key['name']} ({key['masked_value']})")
    for token in data["admin_tokens"]:
        lines.append(f"  {'revoke':16} admin-API token {token['name']} ({token['prefix']})")
    for team in data["teams"]:
        note = "  <- left without a manager" if team["left_without_manager"] else ""
        lines.append(f"  {'keep membership':16} {team['team_role']:8} of {team['name']}{note}")
    for budget in data["budgets"]:
        lines.append(f"  {'flag transfer':16} budget {budget['name']} {budget['amount']}")
    for quota in data["quotas"]:
        lines.append(f"  {'flag transfer':16} quota {quota['name']} {quota['limit']}")
    usage = data["usage"]
    lines.append(
        f"Usage in the last {usage['days']} days: {usage['requests']} requests, "
        f"spend {usage['spend']}, last used {usage['last_used_at'] or 'never'}"
    )
    return "\n".join(lines)


# --- reviews --------------------------------------------------------------------------------


@click.group("reviews")
def reviews() -> None:
    """Access-change reviews (revocations, team deletions, lost roles) and their findings."""


@reviews.command("list")
@ORG_OPTION
@click.option("--status", type=click.Choice([s.value for s in ReviewStatus]), default=None)
@click.option("--cause", type=click.Choice([c.value for c in ReviewCause]), default=None)
@JSON_OPTION
def reviews_list(org_slug: str, status: str | None, cause: str | None, as_json: bool) -> None:
    """Revocation and access reviews, with their open findings."""
    with unit_of_work() as session:
        filters = ReviewFilter(
            status=ReviewStatus(status) if status else None,
            cause=ReviewCause(cause) if cause else None,
        )
        items, _ = list_reviews(session, _viewer(session, org_slug), filters, limit=200)
    text = "\n".join(
        f"{r['id']}  {r['status']:8} {r['cause']:17} {_subject(r)}  "
        f"open={r['findings'].get('open', 0)}"
        for r in visible_strings(items)
    )
    emit(items, as_json=as_json, text=text or "no reviews")


@reviews.command("show")
@ORG_OPTION
@click.argument("review_id")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=MAX_PAGE, show_default=True)
@click.option("--cursor", default=None, help="The next page: after this finding id.")
@click.option("--before", default=None, help="The previous page: before this finding id.")
@JSON_OPTION
def reviews_show(
    org_slug: str,
    review_id: str,
    limit: int,
    cursor: str | None,
    before: str | None,
    as_json: bool,
) -> None:
    """One review and a page of its findings (open, most severe first), as the API pages them."""
    with unit_of_work() as session:
        data = review_detail(
            session,
            _viewer(session, org_slug),
            _uuid(review_id, "review id"),
            limit=limit,
            after=_uuid(cursor, "cursor") if cursor else None,
            before=_uuid(before, "before") if before else None,
        )
    shown = visible_strings(data)  # a name's line break starts no line of the listing
    text = "\n".join(
        [f"review {shown['id']} ({shown['status']}, {shown['cause']}) for {_subject(shown)}"]
        + [
            f"  {f['id']}  {f['state']:9} {f['severity']:7} {f['kind']:24} "
            f"{f['subject_name']}: {f['action']}{' (done)' if f['action_taken'] else ''}"
            for f in shown["findings"]
        ]
        + _pages_text(shown)
    )
    emit(data, as_json=as_json, text=text)


def _pages_text(data: dict[str, Any]) -> list[str]:
    """How to reach the pages either side of this one."""
    lines = []
    if data["findings_previous_cursor"]:
        lines.append(f"previous page: --before {data['findings_previous_cursor']}")
    if data["findings_next_cursor"]:
        lines.append(f"next page: --cursor {data['findings_next_cursor']}")
    return lines


def _subject(review: dict[str, Any]) -> str:
    """Who or what a review is about: the person, else the team."""
    if review["user"]:
        return str(review["user"]["email"])
    return f"team {review['team']['name']}" if review["team"] else "-"


def _decide(org_slug: str, finding_id: str, note: str, as_json: bool, operation: Any) -> None:
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        finding = visible_finding(session, viewer, _uuid(finding_id, "finding id"))
        with audit.keeping_refusals(session):
            operation(session, finding=finding, actor=CLI_ACTOR, note=note)
        data = finding_view(session, finding)
    emit(data, as_json=as_json, text=f"finding {data['id']} is {data['state']}")


@reviews.command("resolve")
@ORG_OPTION
@click.argument("finding_id")
@click.option("--note", default="")
@JSON_OPTION
def reviews_resolve(org_slug: str, finding_id: str, note: str, as_json: bool) -> None:
    """Mark a finding resolved (done by hand)."""
    _decide(org_slug, finding_id, note, as_json, review_actions.resolve_finding)


@reviews.command("dismiss")
@ORG_OPTION
@click.argument("finding_id")
@click.option("--note", default="")
@JSON_OPTION
def reviews_dismiss(org_slug: str, finding_id: str, note: str, as_json: bool) -> None:
    """Mark a finding dismissed (nothing to do)."""
    _decide(org_slug, finding_id, note, as_json, review_actions.dismiss_finding)


@reviews.command("acknowledge")
@ORG_OPTION
@click.argument("review_id")
@JSON_OPTION
def reviews_acknowledge(org_slug: str, review_id: str, as_json: bool) -> None:
    """Acknowledge every open finding of a review (stops the reminders)."""
    with unit_of_work() as session:
        review = visible_review(session, _viewer(session, org_slug), _uuid(review_id, "review id"))
        count = review_actions.acknowledge_review(session, review=review, actor=CLI_ACTOR)
    emit({"acknowledged": count}, as_json=as_json, text=f"{count} finding(s) acknowledged")


@reviews.command("reassign")
@ORG_OPTION
@click.argument("finding_id")
@click.option("--to-user", default=None, help="New owner: user id or email.")
@click.option("--to-team", default=None, help="New owner: team id or name.")
@click.option("--note", default="")
@JSON_OPTION
def reviews_reassign(
    org_slug: str,
    finding_id: str,
    to_user: str | None,
    to_team: str | None,
    note: str,
    as_json: bool,
) -> None:
    """Give a finding's key, budget, quota or team to another user or team."""
    with unit_of_work() as session:
        viewer = _viewer(session, org_slug)
        finding = visible_finding(session, viewer, _uuid(finding_id, "finding id"))
        org_id = viewer.organisation_id
        new_user = find_user(session, org_id, to_user) if to_user else None
        new_team = find_team(session, org_id, to_team) if to_team else None
        with audit.keeping_refusals(session):
            review_actions.reassign_finding(
                session,
                finding=finding,
                actor=CLI_ACTOR,
                to_user=new_user,
                to_team=new_team,
                note=note,
            )
        data = finding_view(session, finding)
    emit(data, as_json=as_json, text=f"finding {data['id']} reassigned; it is {data['state']}")


@reviews.command("team-key-policy")
@ORG_OPTION
@click.argument("policy", type=click.Choice([p.value for p in DeletedTeamKeyPolicy]))
@JSON_OPTION
def reviews_team_key_policy(org_slug: str, policy: str, as_json: bool) -> None:
    """What deleting a team does to its keys: revoke them (default) or hand each to its creator."""
    with unit_of_work() as session:
        organisations.update_settings(
            session,
            organisation=organisations.get_organisation_by_slug(session, org_slug),
            changes={"deleted_team_key_policy": DeletedTeamKeyPolicy(policy)},
            actor=CLI_ACTOR,
        )
    done(f"deleted team key policy: {policy}", {"policy": policy}, as_json=as_json)


@reviews.command("org-key-policy")
@ORG_OPTION
@click.argument("policy", type=click.Choice([p.value for p in KeyPolicy]))
@JSON_OPTION
def reviews_org_key_policy(org_slug: str, policy: str, as_json: bool) -> None:
    """What revoking a person does to the organisation keys they created: hold them for the
    review with an urgent finding (default) or revoke them at once."""
    with unit_of_work() as session:
        organisations.update_settings(
            session,
            organisation=organisations.get_organisation_by_slug(session, org_slug),
            changes={"org_key_policy": KeyPolicy(policy)},
            actor=CLI_ACTOR,
        )
    done(f"organisation key policy: {policy}", {"policy": policy}, as_json=as_json)


@reviews.command("sweep")
@click.option("--org", "org_slug", default=None, help="Only this organisation.")
@JSON_OPTION
def reviews_sweep(org_slug: str | None, as_json: bool) -> None:
    """Find and fix drift now (the beat runs this on a schedule)."""
    from models.actor import Actor

    with unit_of_work() as session:
        org_id = organisations.get_organisation_by_slug(session, org_slug).id if org_slug else None
        result = sweep_reviews(session, actor=Actor.schedule("cli sweep"), organisation_id=org_id)
    data = result.as_dict()
    emit(data, as_json=as_json, text=", ".join(f"{k}: {len(v)}" for k, v in data.items()))


# --- hooks ----------------------------------------------------------------------------------


@click.group("hooks")
def hooks() -> None:
    """Notification hooks: signed webhooks, Slack-compatible URLs, email addresses."""


def _policy() -> UrlPolicy:
    settings = cli_settings()
    return settings.outbound_policy()


@hooks.command("list")
@ORG_OPTION
@JSON_OPTION
def hooks_list(org_slug: str, as_json: bool) -> None:
    """The notification hooks of an organisation (never their secrets)."""
    with unit_of_work() as session:
        org_id = _viewer(session, org_slug).organisation_id
        items = [hooks_actions.hook_view(h) for h in hooks_actions.list_hooks(session, org_id)]
    text = "\n".join(
        f"{h['id']}  {h['kind']:7} {'on ' if h['enabled'] else 'OFF'} {h['name']}  {h['target']}"
        for h in items
    )
    emit(items, as_json=as_json, text=text or "no hooks")


@hooks.command("add")
@ORG_OPTION
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice([k.value for k in HookKind]), required=True)
@click.option("--target", required=True, help="URL (webhook, slack) or email address.")
@click.option("--event", "events", multiple=True, help="Event or prefix.* (default: all).")
@JSON_OPTION
def hooks_add(
    org_slug: str, name: str, kind: str, target: str, events: tuple[str, ...], as_json: bool
) -> None:
    """Add a hook; a webhook's signing secret is printed once."""
    names = resolved_ahead(_policy(), target)  # before the transaction: see outbound_targets
    with unit_of_work() as session:
        hook, secret = hooks_actions.create_hook(
            session,
            organisation_id=_viewer(session, org_slug).organisation_id,
            name=name,
            kind=HookKind(kind),
            target=target,
            events=list(events),
            url_policy=names,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
        )
        data = {**hooks_actions.hook_view(hook), "signing_secret": secret}
    emit(data, as_json=as_json)


@hooks.command("rotate-secret")
@ORG_OPTION
@click.argument("hook_id")
@click.option("--keep-previous-hours", type=float, default=24.0, show_default=True)
@JSON_OPTION
def hooks_rotate(org_slug: str, hook_id: str, keep_previous_hours: float, as_json: bool) -> None:
    """Add a new signing secret; old ones keep signing for the grace period."""
    with unit_of_work() as session:
        org_id = _viewer(session, org_slug).organisation_id
        hook = hooks_actions.get_hook(session, org_id, _uuid(hook_id, "hook id"))
        secret = hooks_actions.rotate_secret(
            session,
            hook=hook,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
            keep_previous_hours=keep_previous_hours,
        )
    emit({"id": hook_id, "signing_secret": secret}, as_json=as_json, text=secret)


@hooks.command("enable")
@ORG_OPTION
@click.argument("hook_id")
@JSON_OPTION
def hooks_enable(org_slug: str, hook_id: str, as_json: bool) -> None:
    """Send to this hook again (its failure count starts over)."""
    _set_enabled(org_slug, hook_id, True, as_json)


@hooks.command("disable")
@ORG_OPTION
@click.argument("hook_id")
@JSON_OPTION
def hooks_disable(org_slug: str, hook_id: str, as_json: bool) -> None:
    """Stop sending to this hook (its deliveries are skipped)."""
    _set_enabled(org_slug, hook_id, False, as_json)


def _set_enabled(org_slug: str, hook_id: str, enabled: bool, as_json: bool) -> None:
    with unit_of_work() as session:
        org_id = _viewer(session, org_slug).organisation_id
        hook = hooks_actions.get_hook(session, org_id, _uuid(hook_id, "hook id"))
        hooks_actions.update_hook(
            session, hook=hook, actor=CLI_ACTOR, url_policy=_policy(), enabled=enabled
        )
    state = "enabled" if enabled else "disabled"
    done(f"hook {hook_id} {state}", {"id": hook_id, "enabled": enabled}, as_json=as_json)


@hooks.command("remove")
@ORG_OPTION
@click.argument("hook_id")
@JSON_OPTION
def hooks_remove(org_slug: str, hook_id: str, as_json: bool) -> None:
    """Delete a hook; its delivery log goes with it."""
    with unit_of_work() as session:
        org_id = _viewer(session, org_slug).organisation_id
        hook = hooks_actions.get_hook(session, org_id, _uuid(hook_id, "hook id"))
        hooks_actions.delete_hook(session, hook=hook, actor=CLI_ACTOR)
    done(f"hook {hook_id} removed", {"id": hook_id, "removed": True}, as_json=as_json)


@hooks.command("deliveries")
@ORG_OPTION
@click.argument("hook_id")
@click.option("--limit", type=click.IntRange(1, 500), default=50)
@JSON_OPTION
def hooks_deliveries(org_slug: str, hook_id: str, limit: int, as_json: bool) -> None:
    """The delivery log of a hook, newest first, with each attempt."""
    with unit_of_work() as session:
        org_id = _viewer(session, org_slug).organisation_id
        hook = hooks_actions.get_hook(session, org_id, _uuid(hook_id, "hook id"))
        items = deliveries_of(session, organisation_id=org_id, hook_id=hook.id, limit=limit)
    text = "\n".join(
        f"{d['id']}  {d['event']:18} {d['status']:9} attempts={len(d['attempts'])} "
        f"{d['last_error'] or ''}"
        for d in items
    )
    emit(items, as_json=as_json, text=text or "no deliveries")
