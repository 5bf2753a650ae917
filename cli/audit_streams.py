"""`odock-sync audit streams`: the organisation's audit log streams to a SIEM."""

from __future__ import annotations

import uuid

import click

from cli.context import CLI_ACTOR, cli_settings, unit_of_work
from cli.options import JSON_OPTION, ORG_OPTION
from cli.output import emit
from connectors.outbound import UrlPolicy
from models.actions import audit_streams as actions
from models.actions import organisations
from models.enums import StreamPreset
from models.outbound_targets import resolved_ahead

ID_OPTION = click.option("--id", "stream_id", required=True, type=click.UUID)


def _policy() -> UrlPolicy:
    return cli_settings().outbound_policy()


@click.group("streams")
def streams() -> None:
    """Audit log streams: batched, ordered, signed delivery of the audit trail."""


@streams.command("add")
@ORG_OPTION
@click.option("--name", required=True)
@click.option("--preset", type=click.Choice([p.value for p in StreamPreset]), default="generic")
@click.option("--target", required=True, help="The receiver's URL.")
@click.option("--splunk-token", default=None, help="The HEC token (Splunk preset).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 5000))
@click.option("--from-beginning", is_flag=True, help="Send the whole trail, not just new events.")
@JSON_OPTION
def add(
    org_slug: str,
    name: str,
    preset: str,
    target: str,
    splunk_token: str | None,
    batch_size: int,
    from_beginning: bool,
    as_json: bool,
) -> None:
    """Add a stream; prints its signing secret once."""
    names = resolved_ahead(_policy(), target)  # before the transaction: see outbound_targets
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        stream, secret = actions.create_stream(
            session,
            organisation_id=organisation.id,
            name=name,
            preset=StreamPreset(preset),
            target=target,
            splunk_token=splunk_token,
            batch_size=batch_size,
            from_beginning=from_beginning,
            url_policy=names,
            secret_key=cli_settings().secret_key,
            actor=CLI_ACTOR,
        )
        data = {**actions.stream_view(stream), "signing_secret": secret}
    emit(data, as_json=as_json)


@streams.command("list")
@ORG_OPTION
@JSON_OPTION
def list_(org_slug: str, as_json: bool) -> None:
    """The streams, their cursors and failures."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        data = [actions.stream_view(s) for s in actions.list_streams(session, organisation.id)]
    emit(data, as_json=as_json, text=None if data else "no audit streams")


@streams.command("pause")
@ORG_OPTION
@ID_OPTION
@JSON_OPTION
def pause(org_slug: str, stream_id: uuid.UUID, as_json: bool) -> None:
    """Stop sending; the cursor stays, nothing is skipped on resume."""
    _set_enabled(org_slug, stream_id, False, as_json)


@streams.command("resume")
@ORG_OPTION
@ID_OPTION
@JSON_OPTION
def resume(org_slug: str, stream_id: uuid.UUID, as_json: bool) -> None:
    """Send again from the cursor, at once."""
    _set_enabled(org_slug, stream_id, True, as_json)


@streams.command("remove")
@ORG_OPTION
@ID_OPTION
@JSON_OPTION
def remove(org_slug: str, stream_id: uuid.UUID, as_json: bool) -> None:
    """Remove a stream; events it has not sent yet are not sent."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        stream = actions.get_stream(session, organisation.id, stream_id)
        actions.delete_stream(session, stream=stream, actor=CLI_ACTOR)
    emit({"id": str(stream_id), "removed": True}, as_json=as_json, text="removed")


def _set_enabled(org_slug: str, stream_id: uuid.UUID, enabled: bool, as_json: bool) -> None:
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        stream = actions.get_stream(session, organisation.id, stream_id)
        actions.update_stream(
            session, stream=stream, actor=CLI_ACTOR, url_policy=_policy(), enabled=enabled
        )
        data = actions.stream_view(stream)
    emit(data, as_json=as_json)
