"""`odock-sync keys`: key changes decided by an operator."""

from __future__ import annotations

import uuid

import click

from cli.context import CLI_ACTOR, unit_of_work
from cli.options import JSON_OPTION
from cli.output import emit
from models.actions import organisations
from models.actions.key_rotations import request_key_rotation
from models.key_changes import is_bridged
from models.text import visible


@click.group()
def keys() -> None:
    """Virtual API keys."""


@keys.command("rotate-request")
@click.option("--org", "org_slug", required=True, help="Organisation slug.")
@click.option("--reason", default="", help="Why the key should be rotated.")
@click.argument("key_id", type=click.UUID)
@JSON_OPTION
def rotate_request(org_slug: str, reason: str, key_id: uuid.UUID, as_json: bool) -> None:
    """Ask Odock's store to rotate a key (bridged); embedded, the request is audited."""
    with unit_of_work() as session:
        organisation = organisations.get_organisation_by_slug(session, org_slug)
        key = request_key_rotation(
            session, organisation_id=organisation.id, key_id=key_id, actor=CLI_ACTOR, reason=reason
        )
        data = {"key_id": str(key.id), "name": key.name, "sent_to_store": is_bridged(session)}
    sent = data["sent_to_store"]
    text = f"rotation of {visible(str(data['name']))} ({key_id}) " + (
        "sent to Odock's store" if sent else "recorded (embedded: no store to send it to)"
    )
    emit(data, as_json=as_json, text=text)
